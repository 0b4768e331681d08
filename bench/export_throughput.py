"""Export benchmark: one person's ~1 GB export against the database's own dump, in one run.

    python bench/export_throughput.py                       # 100 MB and 1 GB on PostgreSQL
    python bench/export_throughput.py --size-mb 100 --small-mb 0 --rounds 1   # a quick look
    python bench/export_throughput.py --database sqlite

What it does, for the main size (--size-mb, default 1024) and a small one (--small-mb, 100):
1. Makes (or reuses, from bench/results/export-data/) a data set for one person: 70% of the
   bytes as rows (messages with text bodies; orders; order items reached through a foreign
   key), 30% as files (incompressible photos and text documents), among nineteen other people
   (bench/export_data.py). Loads it into PostgreSQL (schema `bench_export`, dropped at the end)
   or into a SQLite file (deleted at the end).
2. Baseline: the database's own tool dumps exactly that person's rows to files, with the same
   SELECTs the engine issues (same WHERE, same ORDER BY): `psql -c "\\copy (SELECT ...) TO
   'file'"` per table, or the sqlite3 shell in `.mode json`; then `tar -cf` of the person's
   files and `sync` of every output file (the export fsyncs its package too).
3. Export: a queued operation run by the service's own worker (`Worker.run_once` in
   bench/export_child.py, a process of its own) from a configuration file, as `datapolicy
   worker` would: sources -> streaming ZIP -> local target -> fsync -> publish. Its peak RSS is
   the child's VmHWM (and wait4's ru_maxrss, which must agree).
4. Checks after timing: the package verifies (`verify_package`: every entry's size and SHA-256,
   record counts), its record counts per table and its files match what the data set gave that
   person, and the baseline dumped as many rows.
Rounds alternate which of baseline and export goes first; after one untimed warm-up baseline
(caches), --rounds rounds are timed and medians reported.

Figures: ratio = baseline seconds / export seconds, per round (the export's throughput as a
fraction of the dump's; target >= 0.5 at the main size, information at the small one); peak
RSS of the export process (target < 200 MB at each size and to each storage target) and its
flatness (peak at the main size / peak at the small size, target <= 1.25). With --targets, each
round also exports to Azurite and SeaweedFS (bench/export_targets.py): their ratios against the
same local dump are information (they include the upload), their peak RSS has the same target.
Output: a table with PASS/FAIL, bench/results/export_throughput-<stamp>.json (and
export_throughput-latest.json). Exit status 1 when a target is missed.

The machine is shared: only ratios measured in the same run mean anything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from datapolicy.engine.verify import verify_package
from datapolicy.model import OperationStatus
from datapolicy.store import OperationStore, SQLiteDatabase
from export_data import (
    MB,
    RESULTS,
    TABLES,
    TARGET,
    Dataset,
    drop_postgresql,
    ensure_dataset,
    load_postgresql,
    load_sqlite,
    loaded_postgresql,
)
from export_targets import Target, open_target

BENCH = Path(__file__).resolve().parent
CHILD = BENCH / "export_child.py"
SCHEMA = "bench_export"
SOURCE = "shop"  # the SQL source's name in the package: records/shop/<table>.jsonl
FILES = "uploads"
RATIO_TARGET = 0.5  # export throughput / dump throughput, at least
RSS_TARGET_MB = 200  # peak RSS of the exporting process, below
FLAT_TARGET = 1.25  # peak RSS at the main size / at the small size, at most
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# How each table is reached, as configured for the engine and as the baseline selects it.
REACH = {
    "people": ("user_key", "id"),
    "messages": ("user_key", "user_id"),
    "orders": ("user_key", "user_id"),
    "order_items": ("parent", "orders"),
}


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


def baseline_sql(table: str, user: str) -> str:
    """The SELECT the engine issues for `table` (SqlSource: columns, WHERE, ORDER BY the key)."""
    columns = ", ".join(name for name, _, _ in TABLES[table])
    how, what = REACH[table]
    if how == "user_key":
        where = f"{what} = '{user}'"
    else:
        parent_key = REACH[what][1]
        where = f"order_id IN (SELECT id FROM {what} WHERE {parent_key} = '{user}')"
    return f"SELECT {columns} FROM {table} WHERE {where} ORDER BY id"


# --- the databases ------------------------------------------------------------------------------


@dataclass
class Backend:
    """Where the data set lives for one size, and how its own tool dumps it."""

    kind: str  # postgresql | sqlite
    url: str  # SQLAlchemy URL the engine reads
    libpq: str | None = None  # psql's connection string
    sqlite_path: Path | None = None

    def dump(self, out: Path) -> list[str]:
        """Dump the target's rows into `out`; returns the output files."""
        if self.kind == "postgresql":
            command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.libpq]
            outputs = []
            for table in TABLES:
                path = out / f"{table}.tsv"
                command += ["-c", f"\\copy ({baseline_sql(table, TARGET)}) TO '{path}'"]
                outputs.append(str(path))
            run_measured(command)
            return outputs
        script, outputs = [".mode json"], []
        for table in TABLES:
            path = out / f"{table}.json"
            script += [f".output {path}", baseline_sql(table, TARGET) + ";"]
            outputs.append(str(path))
        command = ["sqlite3", "-bail", "-batch", str(self.sqlite_path)]
        run_measured(command, stdin="\n".join(script) + "\n")
        return outputs

    def dumped_rows(self, path: Path) -> int:
        """Rows in one dump file (COPY text: one line per row; sqlite3 JSON: one per line)."""
        with path.open("rb") as file:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(MB), b""))
        return lines


def run_measured(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        command,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({completed.returncode}): {completed.stderr[:2000]}")
    return completed


def children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


# --- one round ----------------------------------------------------------------------------------


def run_baseline(backend: Backend, dataset: Dataset, out: Path) -> dict:
    """The dump: rows by the database's tool, files by tar, then fsync of every output."""
    out.mkdir(parents=True)
    cpu = children_cpu()
    started = time.perf_counter()
    outputs = backend.dump(out)
    rows_done = time.perf_counter()
    tarball = out / "files.tar"
    subprocess.run(["tar", "-cf", str(tarball), "-C", str(dataset.files_root), TARGET], check=True)
    files_done = time.perf_counter()
    subprocess.run(["sync", *outputs, str(tarball)], check=True)
    finished = time.perf_counter()
    result = {
        "seconds": finished - started,
        "rows_seconds": rows_done - started,
        "files_seconds": files_done - rows_done,
        "fsync_seconds": finished - files_done,
        "client_cpu_seconds": children_cpu() - cpu,
        "bytes": sum(Path(p).stat().st_size for p in [*outputs, tarball]),
        "rows": {Path(p).stem: backend.dumped_rows(Path(p)) for p in outputs},
    }
    shutil.rmtree(out)
    return result


def run_export(run_dir: Path, config: Path, name: str, target: Target) -> dict:
    """Queue one operation to `target` in a fresh store and run it in a child process."""
    store_path = run_dir / f"{name}.sqlite3"
    database = SQLiteDatabase(store_path)
    database.migrate()
    store = OperationStore(database)
    location = target.location(name)
    operation, _ = store.create(TARGET, location)
    database.close()

    command = [sys.executable, str(CHILD), "--config", str(config)]
    command += ["--data-dir", str(run_dir), "--store", str(store_path)]
    stdout, stderr = run_dir / f"{name}.out", run_dir / f"{name}.err"
    started = time.perf_counter()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err)
        # wait4: this child's own rusage (ru_maxrss), which Popen.wait does not give.
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = stderr.read_text(errors="replace")
    if process.returncode != 0:
        raise SystemExit(f"export child failed ({process.returncode}):\n{errors[-4000:]}")
    child = json.loads(stdout.read_text().strip().splitlines()[-1])

    database = SQLiteDatabase(store_path)
    done = OperationStore(database).get(operation.id)
    database.close()
    if done.status is not OperationStatus.COMPLETE:
        raise SystemExit(f"the export did not complete: {done.status} {done.error}\n{errors}")
    package = target.fetch(location, operation.id, run_dir)
    return {
        "seconds": child["seconds"],
        "process_seconds": wall,
        "cpu_seconds": child["cpu_seconds"],
        "fsync_seconds": child["fsync_seconds"],
        "rss_before_mb": child["rss_before_kb"] / 1024,
        "peak_rss_mb": child["hwm_kb"] / 1024,
        "ru_maxrss_mb": usage.ru_maxrss / 1024,
        "package": str(package),
        "package_bytes": package.stat().st_size,
        "store": str(store_path),
    }


def check_package(result: dict, dataset: Dataset) -> list[str]:
    """Verify the package and compare it with what the data set gave the target."""
    package = Path(result["package"])
    started = time.perf_counter()
    problems = verify_package(package)
    result["verify_seconds"] = time.perf_counter() - started
    with zipfile.ZipFile(package) as archive:
        manifest = orjson.loads(archive.read("manifest.json"))
        stored = sum(1 for i in archive.infolist() if i.compress_type == zipfile.ZIP_STORED)
    expected = dataset.meta["target"]
    records = {
        entry["path"].removeprefix(f"records/{SOURCE}/").removesuffix(".jsonl"): entry["records"]
        for entry in manifest["files"]
        if entry["path"].startswith("records/")
    }
    if records != expected["rows"]:
        problems.append(f"records per table {records}, the data set gave {expected['rows']}")
    files = [e for e in manifest["files"] if e["path"].startswith(f"files/{FILES}/")]
    if len(files) != expected["files"] or sum(e["size"] for e in files) != expected["file_bytes"]:
        problems.append(
            f"{len(files)} files of {sum(e['size'] for e in files)} bytes, the data set gave "
            f"{expected['files']} of {expected['file_bytes']}"
        )
    result["payload_bytes"] = sum(e["size"] for e in manifest["files"])
    result["record_bytes"] = sum(
        e["size"] for e in manifest["files"] if e["path"].startswith("records/")
    )
    result["records"] = sum(records.values())
    result["stored_entries"] = stored
    result["entries"] = len(manifest["files"]) + 1
    package.unlink()
    Path(result["store"]).unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(result["store"] + suffix).unlink(missing_ok=True)
    return problems


# --- one size -----------------------------------------------------------------------------------


def write_config(
    run_dir: Path,
    backend: Backend,
    dataset: Dataset,
    batch_size: int | None,
    targets: list[Target],
) -> Path:
    lines = ["[[sources.sql]]", f'name = "{SOURCE}"', f'url = "{backend.url}"']
    if batch_size:
        lines.append(f"batch_size = {batch_size}")
    for table, (how, what) in REACH.items():
        lines += ["", "  [[sources.sql.tables]]", f'  table = "{table}"']
        lines.append(f'  user_key = "{what}"' if how == "user_key" else f'  parent = "{what}"')
    lines += ["", "[[sources.files]]", f'name = "{FILES}"']
    lines += [f'path = "{dataset.files_root}/{{userId}}"', ""]
    lines += [target.config() for target in targets]
    lines += ["[engine]", "workers = 1", ""]
    config = run_dir / "datapolicy.toml"
    config.write_text("\n".join(lines))
    return config


@contextlib.contextmanager
def loaded(args, dataset: Dataset, run_dir: Path):
    """The data set in the database for the duration of the block."""
    if args.database == "postgresql":
        conninfo = args.url.replace("postgresql+psycopg://", "postgresql://", 1)
        if loaded_postgresql(conninfo, SCHEMA) != dataset.directory.name:
            log(f"loading {dataset.directory.name} into PostgreSQL (COPY, keys, VACUUM ANALYZE)")
            started = time.monotonic()
            load_postgresql(dataset, conninfo, SCHEMA, log)
            log(f"loaded in {time.monotonic() - started:.0f} s")
        else:
            log(f"schema {SCHEMA} already holds {dataset.directory.name} (--keep-loaded)")
        options = f"options=-csearch_path%3D{SCHEMA}"
        separator = "&" if "?" in args.url else "?"
        try:
            yield Backend(
                "postgresql",
                url=f"{args.url}{separator}{options}",
                libpq=f"{conninfo}{separator}{options}",
            )
        finally:
            if not args.keep_loaded:
                drop_postgresql(conninfo, SCHEMA)
                log(f"dropped schema {SCHEMA}")
    else:
        if shutil.which("sqlite3") is None:
            raise SystemExit("the sqlite3 shell is missing: apt-get install -y sqlite3")
        path = run_dir / "bench.sqlite3"
        log(f"building a SQLite database of {dataset.directory.name}")
        load_sqlite(dataset, path, log)
        try:
            yield Backend("sqlite", url=f"sqlite:///{path}", sqlite_path=path)
        finally:
            path.unlink(missing_ok=True)


def measure_size(args, size_mb: int, run_dir: Path) -> dict:
    dataset = ensure_dataset(size_mb, log=log)
    run_dir.mkdir(parents=True)
    rounds: list[dict] = []
    problems: list[str] = []
    targets = [open_target(name, run_dir) for name in ("local", *args.targets)]
    local, others = targets[0], targets[1:]
    with contextlib.ExitStack() as cleanup, loaded(args, dataset, run_dir) as backend:
        for target in targets:
            cleanup.callback(target.close)
        config = write_config(run_dir, backend, dataset, args.batch_size, targets)
        expected = dataset.meta["target"]
        for index in range(args.warmup):
            log(f"{size_mb} MB: warm-up baseline {index + 1}")
            run_baseline(backend, dataset, run_dir / "baseline-warmup")
        for index in range(args.rounds):
            order = ("baseline", "export") if index % 2 == 0 else ("export", "baseline")
            result: dict = {"order": list(order)}
            for step in order:
                if step == "baseline":
                    result["baseline"] = run_baseline(
                        backend, dataset, run_dir / f"baseline-{index}"
                    )
                else:
                    result["export"] = run_export(run_dir, config, f"export-{index}", local)
            baseline, export = result["baseline"], result["export"]
            result["ratio"] = baseline["seconds"] / export["seconds"]
            result["ratio_no_fsync"] = (baseline["seconds"] - baseline["fsync_seconds"]) / (
                export["seconds"] - export["fsync_seconds"]
            )
            found = check_package(export, dataset)
            result["targets"] = {}
            for target in others:
                elsewhere = run_export(run_dir, config, f"export-{index}-{target.name}", target)
                elsewhere["ratio"] = baseline["seconds"] / elsewhere["seconds"]
                found += [f"{target.name}: {p}" for p in check_package(elsewhere, dataset)]
                result["targets"][target.name] = elsewhere
                log(
                    f"{size_mb} MB round {index + 1} to {target.name}: export "
                    f"{elsewhere['seconds']:.1f} s, ratio {elsewhere['ratio']:.2f}, peak RSS "
                    f"{elsewhere['peak_rss_mb']:.0f} MB"
                )
            if baseline["rows"] != expected["rows"]:
                found.append(f"baseline dumped {baseline['rows']}, expected {expected['rows']}")
            problems += [f"round {index + 1}: {p}" for p in found]
            log(
                f"{size_mb} MB round {index + 1}: baseline {baseline['seconds']:.1f} s, export "
                f"{export['seconds']:.1f} s, ratio {result['ratio']:.2f}, peak RSS "
                f"{export['peak_rss_mb']:.0f} MB, verify {found or 'ok'}"
            )
            rounds.append(result)
    return summarise_size(size_mb, dataset, rounds, problems, size_mb == args.size_mb)


def summarise_size(
    size_mb: int, dataset: Dataset, rounds: list[dict], problems: list[str], main: bool
) -> dict:
    """Medians over the rounds. The throughput target is the issue's for the main (~1 GB)
    export; at the small size, which is there for memory flatness, the ratio is information."""

    def med(values: list[float]) -> float:
        return statistics.median(values)

    ratios = [r["ratio"] for r in rounds]
    exports = [r["export"] for r in rounds]
    baselines = [r["baseline"] for r in rounds]
    peak = max(e["peak_rss_mb"] for e in exports)
    ratio = med(ratios)
    targets = {
        name: {
            "seconds": med([r["targets"][name]["seconds"] for r in rounds]),
            "ratio": med([r["targets"][name]["ratio"] for r in rounds]),
            "peak_rss_mb": max(r["targets"][name]["peak_rss_mb"] for r in rounds),
            "cpu_seconds": med([r["targets"][name]["cpu_seconds"] for r in rounds]),
        }
        for name in rounds[0]["targets"]
    }
    for row in targets.values():
        row["rss_pass"] = row["peak_rss_mb"] < RSS_TARGET_MB
    payload = exports[0]["payload_bytes"]
    export_s = med([e["seconds"] for e in exports])
    return {
        "size_mb": size_mb,
        "dataset": dataset.directory.name,
        "target_rows": dataset.meta["target"]["rows"],
        "records": exports[0]["records"],
        "payload_mb": payload / MB,
        "record_mb": exports[0]["record_bytes"] / MB,
        "file_mb": dataset.meta["target"]["file_bytes"] / MB,
        "package_mb": med([e["package_bytes"] for e in exports]) / MB,
        "baseline_mb": med([b["bytes"] for b in baselines]) / MB,
        "baseline_seconds": med([b["seconds"] for b in baselines]),
        "baseline_rows_seconds": med([b["rows_seconds"] for b in baselines]),
        "baseline_files_seconds": med([b["files_seconds"] for b in baselines]),
        "baseline_fsync_seconds": med([b["fsync_seconds"] for b in baselines]),
        "baseline_client_cpu_seconds": med([b["client_cpu_seconds"] for b in baselines]),
        "export_seconds": export_s,
        "export_cpu_seconds": med([e["cpu_seconds"] for e in exports]),
        "export_mb_per_second": payload / MB / export_s,
        "records_per_second": exports[0]["records"] / export_s,
        "verify_seconds": med([e["verify_seconds"] for e in exports]),
        "ratio": ratio,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratio_no_fsync": med([r["ratio_no_fsync"] for r in rounds]),
        "peak_rss_mb": peak,
        "rss_before_mb": med([e["rss_before_mb"] for e in exports]),
        "growth_mb": max(e["peak_rss_mb"] - e["rss_before_mb"] for e in exports),
        "ru_maxrss_mb": max(e["ru_maxrss_mb"] for e in exports),
        "ratio_applies": main,
        "ratio_pass": ratio >= RATIO_TARGET or not main,
        "rss_pass": peak < RSS_TARGET_MB,
        "targets": targets,
        "verified": not problems,
        "problems": problems,
        "rounds": rounds,
    }


# --- report -------------------------------------------------------------------------------------


def machine_info(args) -> dict:
    info = {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "orjson": orjson.__version__,
        "loadavg_start": os.getloadavg(),
    }
    if args.database == "postgresql":
        conninfo = args.url.replace("postgresql+psycopg://", "postgresql://", 1)
        version = subprocess.run(
            ["psql", "-X", "-At", conninfo, "-c", "SHOW server_version"],
            capture_output=True,
            text=True,
        )
        info["postgresql"] = version.stdout.strip()
    else:
        version = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True)
        info["sqlite3_shell"] = version.stdout.split(" ")[0]
        info["sqlite"] = sqlite3.sqlite_version
    return info


def print_report(args, machine: dict, sizes: list[dict], flat: dict | None) -> None:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    database = (
        f"PostgreSQL {machine.get('postgresql')}"
        if args.database == "postgresql"
        else (f"SQLite {machine.get('sqlite')}")
    )
    print()
    print(
        f"Export of one person vs the database's own dump ({database}; {args.rounds} rounds, "
        "medians)"
    )
    header = (
        f"{'size':>7}{'payload MB':>11}{'records':>10}{'dump s':>8}{'export s':>9}"
        f"{'ratio':>7}{'min-max':>11}{'no-fsync':>9}  target     {'peak RSS MB':>11}  target"
    )
    print(header)
    for s in sizes:
        spread = f"{s['ratio_min']:.2f}-{s['ratio_max']:.2f}"
        ratio_target = f">= {RATIO_TARGET} {verdict(s['ratio_pass'])}"
        print(
            f"{s['size_mb']:>4} MB{s['payload_mb']:>11.0f}{s['records']:>10,}"
            f"{s['baseline_seconds']:>8.1f}{s['export_seconds']:>9.1f}{s['ratio']:>7.2f}"
            f"{spread:>11}{s['ratio_no_fsync']:>9.2f}  "
            + (ratio_target if s["ratio_applies"] else "(info)     ")
            + f"{s['peak_rss_mb']:>13.0f}  < {RSS_TARGET_MB} {verdict(s['rss_pass'])}"
        )
        for name, row in s["targets"].items():
            print(
                f"{'to ' + name:>7}{'':>11}{'':>10}{'':>8}{row['seconds']:>9.1f}"
                f"{row['ratio']:>7.2f}{'':>11}{'':>9}  {'(info)':<11}"
                f"{row['peak_rss_mb']:>13.0f}  < {RSS_TARGET_MB} {verdict(row['rss_pass'])}"
            )
    if flat is not None:
        print(
            f"memory flatness: peak RSS {flat['large_mb']:.0f} MB at {flat['large_size']} MB vs "
            f"{flat['small_mb']:.0f} MB at {flat['small_size']} MB = x{flat['ratio']:.2f}  "
            f"<= {FLAT_TARGET} {verdict(flat['pass'])}"
        )
    print()
    print("  ratio: dump seconds / export seconds (export throughput as a fraction of the dump's)")
    print("  no-fsync: the same ratio without the time spent in fsync on either side")
    for s in sizes:
        print(
            f"  {s['size_mb']} MB: dump = rows {s['baseline_rows_seconds']:.1f} s + files "
            f"{s['baseline_files_seconds']:.1f} s + fsync {s['baseline_fsync_seconds']:.1f} s "
            f"({s['baseline_mb']:.0f} MB written, client CPU {s['baseline_client_cpu_seconds']:.1f}"
            f" s); export: {s['export_mb_per_second']:.1f} MB/s, {s['records_per_second']:,.0f} "
            f"records/s, CPU {s['export_cpu_seconds']:.1f} s, package {s['package_mb']:.0f} MB; "
            f"RSS {s['rss_before_mb']:.0f} MB before the export, +{s['growth_mb']:.0f} MB during "
            f"it; verified: "
            f"{'yes' if s['verified'] else 'NO: ' + '; '.join(s['problems'][:3])}"
        )
    print(
        f"\nmachine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory_gb']} GB, "
        f"Python {machine['python']}, zlib {machine['zlib']}, orjson {machine['orjson']}; "
        f"load average {machine['loadavg_start'][0]:.2f} -> {machine['loadavg_end'][0]:.2f}"
    )


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1024, help="the person's data, main size")
    parser.add_argument(
        "--small-mb",
        type=int,
        default=100,
        help="the size memory flatness is compared with (0: none)",
    )
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL (SQLAlchemy URL)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per size (medians)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed baselines first")
    parser.add_argument(
        "--batch-size", type=int, help="the SQL source's batch_size (default: its own)"
    )
    parser.add_argument(
        "--keep-loaded", action="store_true", help=f"keep schema {SCHEMA} for the next run"
    )
    parser.add_argument(
        "--targets",
        type=lambda text: [name for name in text.split(",") if name],
        default=["azure", "s3"],
        help="storage targets exported to besides the local one, comma-separated "
        "(azure, s3; '' for none)  [default: azure,s3]",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still drop the schema

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_root = RESULTS / f"export-run-{stamp}"
    machine = machine_info(args)
    sizes_mb = [args.size_mb] if not args.small_mb else [args.small_mb, args.size_mb]
    sizes = []
    try:
        for size_mb in sizes_mb:
            sizes.append(measure_size(args, size_mb, run_root / f"{size_mb}mb"))
    finally:
        shutil.rmtree(run_root, ignore_errors=True)
    machine["loadavg_end"] = os.getloadavg()

    flat = None
    if len(sizes) == 2:
        small, large = sizes
        ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
        flat = {
            "small_size": small["size_mb"],
            "large_size": large["size_mb"],
            "small_mb": small["peak_rss_mb"],
            "large_mb": large["peak_rss_mb"],
            "ratio": ratio,
            "pass": ratio <= FLAT_TARGET,
        }
    print_report(args, machine, sizes, flat)
    report = {
        "benchmark": "export_throughput",
        "stamp": stamp,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "options": vars(args),
        "targets": {"ratio": RATIO_TARGET, "rss_mb": RSS_TARGET_MB, "flatness": FLAT_TARGET},
        "machine": machine,
        "sizes": sizes,
        "flatness": flat,
        "baseline_sql": {t: baseline_sql(t, TARGET) for t in TABLES},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"export_throughput-{stamp}.json"
    out.write_text(json.dumps(report, indent=1, default=str))
    shutil.copyfile(out, RESULTS / "export_throughput-latest.json")
    print(f"results: {out}")
    passed = all(
        s["ratio_pass"]
        and s["rss_pass"]
        and s["verified"]
        and all(row["rss_pass"] for row in s["targets"].values())
        for s in sizes
    )
    if flat is not None:
        passed = passed and flat["pass"]
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
