"""API benchmark: datapolicy against a bare ASGI floor on the same server, measured in one run.

    python bench/api_throughput.py                      # the full run (1,000,000 operations)
    python bench/api_throughput.py --operations 100000 --duration 5 --rounds 1   # a quick look

What it does:
1. Makes (or reuses, from bench/results/db/) a database of --operations operations and one of
   --small-operations (bench/populate.py).
2. Starts, each pinned to CPU 0 with taskset: `datapolicy serve` (the default: two export
   threads, which the data gives nothing to do) on the large and on the small database, and
   bench/bare_server.py (on uvicorn as `serve` runs it, server.py `http_server`) whose fixed
   responses have the size and headers of the real GET-by-id and list responses.
   Every request carries an `Authorization: Bearer` token made with the data directory's own
   signing key (the bare server gets the same header, and ignores it).
3. Warms up: every GET-by-id path is read once (so the service's read cache holds those
   operations, as it holds the ones clients poll), then a short wrk run per target.
4. Drives them with wrk pinned to CPU 1 (loopback only), alternating bare and datapolicy in
   every round so that drift on a noisy machine hits both:
   - throughput: GET by id over --ids random existing ids (bench/paths.lua), and a filtered,
     ordered list page, with --connections connections; the figure is datapolicy / bare. GET by
     id is measured again while another connection commits a one-row write to the large
     database every --busy-interval seconds, as a worker's heartbeat does: each commit drops
     the written operation from the service's read cache and makes it read the change log
     (store/changes.py), so that figure shows GET by id on a store that is being written to;
   - list latency: one connection (so latency is service time, not queueing), for several list
     requests on the small and the large database; the figure is large / small.
5. Prints a table with PASS/FAIL against the targets and writes bench/results/<stamp>.json.

Every figure is a ratio of two measurements taken minutes apart on the same machine; the
medians over --rounds rounds are reported, and every round is kept in the JSON file.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from datapolicy.auth.keys import signing_key
from datapolicy.auth.permissions import EXPORT
from datapolicy.auth.tokens import issue_token
from datapolicy.config import AuthConfig
from datapolicy.odata.options import LIST_OPTIONS, parse_query_options
from datapolicy.odata.skiptoken import SkipToken
from datapolicy.settings import DATABASE_FILE
from datapolicy.store import OperationStore, SQLiteDatabase
from populate import FAR, RESULTS, ensure_database

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "paths.lua"
API = "/v1.0/dataPolicyOperations"
HOST = "127.0.0.1"
GET_TARGET = 0.5  # datapolicy GET-by-id rps / bare rps, at least
BUSY_TARGET = 0.35  # the same while the store is written to, at least
LATENCY_TARGET = 2.0  # list latency at the large size / at the small size, at most
SAMPLE_RESPONSES = 200  # GET-by-id responses averaged for the bare body size
DEPTH = 0.9  # how far into the matching rows a deep $skiptoken page starts


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Fleet:
    """The server processes this run started; `stop` ends each of them, by pid."""

    logs: Path
    server_cpu: str | None
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    pids: dict[int, int] = field(default_factory=dict)  # port -> server pid
    # port -> the Authorization header its requests carry
    authorization: dict[int, str] = field(default_factory=dict)

    def start(self, name: str, command: list[str], port: int, authorization: str) -> None:
        if self.server_cpu is not None:
            command = ["taskset", "-c", self.server_cpu, *command]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPOLICY_")}
        output = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.processes.append((name, process))
        self.pids[port] = process.pid
        self.authorization[port] = authorization
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}: see {output.name}")
            try:
                status, _, _ = http_get(port, f"{API}?$top=1", authorization)
                if status == 200:
                    log(f"{name} is up on port {port} (pid {process.pid})")
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{name} did not answer within 120 s: see {output.name}")

    def stop(self) -> None:
        for name, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    log(f"{name} (pid {process.pid}) ignored SIGTERM; killing it")
                    process.kill()
                    process.wait()
        self.processes.clear()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def bearer(data_dir: Path) -> str:
    """An Authorization header value for a server on `data_dir`, valid for a day: a token from
    its own signing key (made now if the server has not made it yet), as `datapolicy token`."""
    auth = AuthConfig()
    token = issue_token(
        signing_key(data_dir),
        issuer=auth.issuer,
        audience=auth.audience,
        permissions=[EXPORT],
        lifetime=86400,
        subject="bench",
    )
    return f"Bearer {token}"


def http_get(
    port: int, path: str, authorization: str, connection: http.client.HTTPConnection | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = connection or http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request("GET", path, headers={"Authorization": authorization})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        if connection is None:
            conn.close()


def ensure_wrk() -> str:
    if shutil.which("wrk") is None:
        log("wrk is missing: apt-get install -y wrk")
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, stdout=subprocess.DEVNULL)
    banner = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return " ".join(banner.split()[:2])  # "wrk debian/4.1.0-3+b2"


def run_wrk(
    port: int,
    paths: Path,
    seconds: float,
    connections: int,
    load_cpu: str | None,
    authorization: str,
) -> dict:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-H",
        f"Authorization: {authorization}",
        "-s",
        str(LUA),
        f"http://{HOST}:{port}",
        "--",
        str(paths),
    ]
    if load_cpu is not None:
        command = ["taskset", "-c", load_cpu, *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith("JSON "):
            result = json.loads(line[5:])
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            result["error_count"] = sum(result["errors"].values())
            if result["error_count"]:
                log(f"  wrk saw errors against port {port}: {result['errors']}")
            return result
    raise SystemExit(f"wrk gave no result (exit {done.returncode}): {done.stderr or done.stdout}")


# --- the requests ------------------------------------------------------------------------------


def list_path(pairs: list[tuple[str, str]]) -> str:
    return f"{API}?" + urlencode(pairs, quote_via=quote, safe="$,'()*:") if pairs else API


@dataclass
class Scenario:
    name: str
    description: str
    pairs: list[tuple[str, str]]  # the query, without $skiptoken
    deep: bool  # start DEPTH of the way into the matching rows, via $skiptoken


def scenarios(busiest_user: str) -> list[Scenario]:
    newest_failed = [("$filter", "status eq 'failed'"), ("$orderby", "submittedDateTime desc")]
    return [
        Scenario("default_first", "no filter, default order, first page (100)", [], False),
        Scenario("default_deep", "no filter, default order, $skiptoken page 90% deep", [], True),
        Scenario(
            "filtered_first",
            "status eq 'failed', submittedDateTime desc, first page (100)",
            newest_failed,
            False,
        ),
        Scenario(
            "filtered_deep",
            "status eq 'failed', submittedDateTime desc, $skiptoken page 90% deep",
            newest_failed,
            True,
        ),
        Scenario(
            "user_first",
            "userId eq one user, submittedDateTime desc, $top=10",
            [
                ("$filter", f"userId eq '{busiest_user}'"),
                ("$orderby", "submittedDateTime desc"),
                ("$top", "10"),
            ],
            False,
        ),
    ]


def resolve_path(store: OperationStore, scenario: Scenario) -> tuple[str, str | None]:
    """The request path for a scenario on one database, and the id its page must start with.

    A deep page's $skiptoken is made by the service's own code (SkipToken.for_row of the row
    before the wanted position), i.e. the token its nextLink would carry at that point."""
    options = parse_query_options(scenario.pairs, LIST_OPTIONS)
    if not scenario.deep:
        return list_path(scenario.pairs), None
    total = store.count(options)
    position = min(int(total * DEPTH), total - options.page_size - 1)

    def row_at(index: int):
        pairs = [p for p in scenario.pairs if p[0] != "$top"]
        pairs += [("$skip", str(index)), ("$top", "1")]
        return store.list(parse_query_options(pairs, LIST_OPTIONS)).items[0]

    token = SkipToken.for_row(row_at(position - 1), options.orderby).encode()
    return list_path([*scenario.pairs, ("$skiptoken", token)]), row_at(position).id


def check_page(port: int, path: str, authorization: str, first_id: str | None, size: int) -> int:
    status, _, body = http_get(port, path, authorization)
    document = json.loads(body)
    if status != 200 or len(document.get("value", ())) != size:
        raise SystemExit(f"unexpected answer to {path}: {status} {body[:300]!r}")
    if first_id is not None and document["value"][0]["id"] != first_id:
        raise SystemExit(f"the $skiptoken page does not start where expected: {path}")
    return len(body)


def busiest_user(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return connection.execute(
            "SELECT user_id FROM operations GROUP BY user_id ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()[0]


def sample_ids(path: Path, count: int) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT id FROM operations WHERE deleted_at IS NULL ORDER BY random() LIMIT ?",
            (count,),
        ).fetchall()
    return [row[0] for row in rows]


def response_spec(port: int, paths: list[str], authorization: str) -> dict:
    """The mean body size over `paths` and the headers of the first response, minus those the
    HTTP server adds itself."""
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    sizes, headers = [], None
    try:
        for path in paths:
            status, response_headers, body = http_get(port, path, authorization, connection)
            if status != 200:
                raise SystemExit(f"GET {path} answered {status}: {body[:300]!r}")
            sizes.append(len(body))
            headers = headers or response_headers
    finally:
        connection.close()
    own = {"content-length", "date", "server", "connection", "keep-alive"}
    return {
        "size": round(statistics.mean(sizes)),
        "headers": [[k.lower(), v] for k, v in headers or [] if k.lower() not in own],
    }


def prewarm(path: Path) -> None:
    """Read the database file once so that it is in the OS page cache, as on a warm server."""
    with path.open("rb") as file:
        while file.read(1 << 24):
            pass


def read_each(port: int, paths: Path, authorization: str, clients: int = 8) -> None:
    """GET every path of the file once, as the clients polling those operations have on a
    server that has been up a while: the service's read cache then holds them."""
    lines = paths.read_text().split()

    def read(part: list[str]) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=60)
        try:
            for path in part:
                status, _, body = http_get(port, path, authorization, connection)
                if status != 200:
                    raise SystemExit(f"GET {path} answered {status}: {body[:300]!r}")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=read, args=(lines[i::clients],), daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- the run -----------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--operations", type=int, default=1_000_000, help="the large database")
    parser.add_argument("--small-operations", type=int, default=10_000, help="the small one")
    parser.add_argument("--duration", type=float, default=10, help="seconds per throughput run")
    parser.add_argument("--latency-duration", type=float, default=5, help="seconds per list run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (load)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per target")
    parser.add_argument("--ids", type=int, default=100_000, help="distinct ids GET-by-id uses")
    parser.add_argument(
        "--busy-interval",
        type=float,
        default=0.1,
        help="seconds between the commits made during the 'GET by id, store written to' runs",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the servers

    wrk_version = ensure_wrk()
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    server_cpu, load_cpu = ("0", "1") if pin else (None, None)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RESULTS / f"run-{stamp}"
    run_dir.mkdir(parents=True)

    large_dir = ensure_database(args.operations, log=log)
    small_dir = ensure_database(args.small_operations, log=log)
    large_db, small_db = large_dir / DATABASE_FILE, small_dir / DATABASE_FILE
    for path in (large_db, small_db):
        prewarm(path)

    ids = sample_ids(large_db, args.ids)
    get_paths = run_dir / "get_paths.txt"
    get_paths.write_text("".join(f"{API}/{i}\n" for i in ids))

    machine = {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "uvicorn": _version("uvicorn"),
        "starlette": _version("starlette"),
        "wrk": wrk_version,
        "pinned": {"servers": server_cpu, "wrk": load_cpu} if pin else None,
        "loadavg_start": os.getloadavg(),
    }
    datapolicy = _datapolicy_command()
    fleet = Fleet(run_dir, server_cpu)
    ports = {"large": free_port(), "small": free_port(), "bare": free_port()}
    # One client at tens of thousands of requests a second: its rate limits stay on, so their
    # cost is measured, but are set so high that they never run out.
    limits = run_dir / "limits.toml"
    limits.write_text("[limits]\nread_rate = 1e9\nwrite_rate = 1e9\n")
    try:
        for size, data_dir in (("large", large_dir), ("small", small_dir)):
            # A default `serve`, export threads included: the data gives them no work
            # (bench/populate.py), so that only the busy runs' commits change the store.
            command = [*datapolicy, "serve", "--host", HOST, "--port", str(ports[size])]
            command += ["--data-dir", str(data_dir), "--config", str(limits)]
            fleet.start(f"datapolicy-{size}", command, ports[size], bearer(data_dir))

        # The list requests, resolved against each database.
        user = busiest_user(small_db)
        plans: dict[str, dict[str, dict]] = {}
        for size, db in (("large", large_db), ("small", small_db)):
            database = SQLiteDatabase(db)
            store = OperationStore(database)
            for scenario in scenarios(user):
                path, first_id = resolve_path(store, scenario)
                page = 10 if scenario.name == "user_first" else 100
                body_size = check_page(
                    ports[size], path, fleet.authorization[ports[size]], first_id, page
                )
                paths_file = run_dir / f"list_{scenario.name}_{size}.txt"
                paths_file.write_text(path + "\n")
                plans.setdefault(scenario.name, {})[size] = {
                    "path": path,
                    "paths_file": paths_file,
                    "body_bytes": body_size,
                }
            database.close()

        # The floor: fixed responses the size of the real ones.
        list_throughput = plans["filtered_first"]["large"]
        large_authorization = fleet.authorization[ports["large"]]
        spec = {
            "entity": response_spec(
                ports["large"], [f"{API}/{i}" for i in ids[:SAMPLE_RESPONSES]], large_authorization
            ),
            "list": response_spec(ports["large"], [list_throughput["path"]], large_authorization),
        }
        (run_dir / "bare_spec.json").write_text(json.dumps(spec, indent=1))
        fleet.start(
            "bare",
            [
                sys.executable,
                str(BENCH / "bare_server.py"),
                "--port",
                str(ports["bare"]),
                "--spec",
                str(run_dir / "bare_spec.json"),
            ],
            ports["bare"],
            large_authorization,  # the same request bytes as datapolicy gets
        )
        log(f"bare responses: GET {spec['entity']['size']} B, list {spec['list']['size']} B")

        get_paths_small_file = get_paths_small(run_dir, small_db, args.ids)
        throughput_targets = {
            "get_by_id": ("large", get_paths),
            "get_by_id_small": ("small", get_paths_small_file),
            "get_by_id_busy": ("large", get_paths),
            "filtered_list": ("large", list_throughput["paths_file"]),
        }
        # Targets measured while the large database is being written to (see committing()).
        busy = {"get_by_id_busy": (large_db, args.busy_interval)}

        def load(port: int, paths: Path, seconds: float, connections: int) -> dict:
            """One wrk run, plus the server's CPU time per request: rps on a shared machine
            moves with the neighbours' load, CPU time per request much less."""
            before = cpu_seconds(fleet.pids[port])
            result = run_wrk(port, paths, seconds, connections, load_cpu, fleet.authorization[port])
            used = cpu_seconds(fleet.pids[port]) - before
            result["server_cpu_s"] = used
            result["cpu_us_per_request"] = used * 1e6 / max(1, result["requests"])
            return result

        log("warming up")
        for server, paths in (("large", get_paths), ("small", get_paths_small_file)):
            read_each(ports[server], paths, fleet.authorization[ports[server]])
        for server, paths in throughput_targets.values():
            load(ports[server], paths, args.warmup, args.connections)
            load(ports["bare"], paths, args.warmup, args.connections)
        for plan in plans.values():
            for size in ("small", "large"):
                load(ports[size], plan[size]["paths_file"], 1, 1)

        throughput: dict[str, list[dict]] = {name: [] for name in throughput_targets}
        latency: dict[str, list[dict]] = {name: [] for name in plans}
        for round_number in range(args.rounds):
            log(f"round {round_number + 1}/{args.rounds}: throughput")
            for name, (server, paths) in throughput_targets.items():
                order = ["bare", server] if round_number % 2 == 0 else [server, "bare"]
                with committing(*busy[name]) if name in busy else nullcontext() as commits:
                    measured = {
                        ("bare" if who == "bare" else "datapolicy"): load(
                            ports[who], paths, args.duration, args.connections
                        )
                        for who in order
                    }
                if commits is not None:
                    measured["commits_per_s"] = commits["count"] / commits["seconds"]
                measured["ratio"] = measured["datapolicy"]["rps"] / measured["bare"]["rps"]
                measured["cpu_ratio"] = (
                    measured["bare"]["cpu_us_per_request"]
                    / measured["datapolicy"]["cpu_us_per_request"]
                )
                throughput[name].append(measured)
                log(
                    f"  {name}: bare {measured['bare']['rps']:,.0f} rps, datapolicy "
                    f"{measured['datapolicy']['rps']:,.0f} rps, ratio {measured['ratio']:.2f} "
                    f"(CPU time per request: {measured['bare']['cpu_us_per_request']:.0f} vs "
                    f"{measured['datapolicy']['cpu_us_per_request']:.0f} us)"
                )
                if name in busy:  # the commits dropped an operation from the cache: read it
                    read_each(ports[server], paths, fleet.authorization[ports[server]])
            log(f"round {round_number + 1}/{args.rounds}: list latency (one connection)")
            for name, plan in plans.items():
                order = ["small", "large"] if round_number % 2 == 0 else ["large", "small"]
                measured = {
                    size: load(ports[size], plan[size]["paths_file"], args.latency_duration, 1)
                    for size in order
                }
                latency[name].append(measured)
                log(
                    f"  {name}: p50 {measured['small']['latency_us']['p50'] / 1000:.2f} ms "
                    f"-> {measured['large']['latency_us']['p50'] / 1000:.2f} ms"
                )
    finally:
        fleet.stop()
    machine["loadavg_end"] = os.getloadavg()

    summary = summarise(args, throughput, latency, plans)
    result = {
        "started": stamp,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "arguments": vars(args),
        "machine": machine,
        "bare_spec": spec,
        "summary": summary,
        "throughput_rounds": throughput,
        "latency_rounds": latency,
        "list_requests": {
            name: {size: {k: plan[k] for k in ("path", "body_bytes")} for size, plan in by.items()}
            for name, by in plans.items()
        },
    }
    output = RESULTS / f"api_throughput-{stamp}.json"
    output.write_text(json.dumps(result, indent=1, default=str))
    (RESULTS / "api_throughput-latest.json").write_text(json.dumps(result, indent=1, default=str))
    print_report(args, machine, summary)
    print(f"\nresults: {output}\nlogs and request files: {run_dir}")
    if summary["failures"]:
        sys.exit(1)


@contextmanager
def committing(path: Path, interval: float) -> Iterator[dict]:
    """While the block runs, another connection commits a write to the database every
    `interval` seconds, as export workers' heartbeats do: it renews the lease of one running
    operation (`lease_expires_at`, which no response shows), held by a worker of another
    process. A write that left the row as it
    was would not do: SQLite commits nothing then."""
    stop = threading.Event()
    commits = {"count": 0, "seconds": 0.0}
    connection = sqlite3.connect(path, isolation_level=None, timeout=10, check_same_thread=False)
    (operation_id,) = connection.execute(
        "SELECT id FROM operations WHERE status = 'running' AND deleted_at IS NULL LIMIT 1"
    ).fetchone()

    def write() -> None:
        started = time.monotonic()
        try:
            while not stop.wait(interval):
                # Still far ahead (populate.py `FAR`), so that the export threads of the
                # `serve` being measured never take the operation over; a new value each time.
                expires = FAR + commits["count"] + 1
                connection.execute(
                    "UPDATE operations SET lease_expires_at = ? WHERE id = ?",
                    (expires, operation_id),
                )
                commits["count"] += 1
        finally:
            commits["seconds"] = time.monotonic() - started

    writer = threading.Thread(target=write, name="committing", daemon=True)
    writer.start()
    try:
        yield commits
    finally:
        stop.set()
        writer.join()
        connection.close()


def get_paths_small(run_dir: Path, small_db: Path, count: int) -> Path:
    path = run_dir / "get_paths_small.txt"
    path.write_text("".join(f"{API}/{i}\n" for i in sample_ids(small_db, count)))
    return path


def summarise(args, throughput: dict, latency: dict, plans: dict) -> dict:
    summary: dict = {"throughput": {}, "latency": {}, "failures": []}
    for name, rounds in throughput.items():
        row = {
            "bare_rps": median([r["bare"]["rps"] for r in rounds]),
            "datapolicy_rps": median([r["datapolicy"]["rps"] for r in rounds]),
            "ratio": median([r["ratio"] for r in rounds]),
            "ratio_min": min(r["ratio"] for r in rounds),
            "ratio_max": max(r["ratio"] for r in rounds),
            "errors": sum(r[w]["error_count"] for r in rounds for w in ("bare", "datapolicy")),
            "bare_cpu_us": median([r["bare"]["cpu_us_per_request"] for r in rounds]),
            "datapolicy_cpu_us": median([r["datapolicy"]["cpu_us_per_request"] for r in rounds]),
            "cpu_ratio": median([r["cpu_ratio"] for r in rounds]),
        }
        if "commits_per_s" in rounds[0]:
            row["commits_per_s"] = median([r["commits_per_s"] for r in rounds])
        for who in ("bare", "datapolicy"):
            for p in ("p50", "p99"):
                row[f"{who}_{p}_ms"] = median([r[who]["latency_us"][p] / 1000 for r in rounds])
        if target := {"get_by_id": GET_TARGET, "get_by_id_busy": BUSY_TARGET}.get(name):
            row["target"] = f">= {target}"
            row["pass"] = row["ratio"] >= target and row["errors"] == 0
            if not row["pass"]:
                summary["failures"].append(name)
        summary["throughput"][name] = row
    for name, rounds in latency.items():
        row = {"description": next(s.description for s in scenarios("") if s.name == name)}
        for size in ("small", "large"):
            for p in ("p50", "p99"):
                row[f"{size}_{p}_ms"] = median([r[size]["latency_us"][p] / 1000 for r in rounds])
            row[f"{size}_rps"] = median([r[size]["rps"] for r in rounds])
            row[f"{size}_cpu_us"] = median([r[size]["cpu_us_per_request"] for r in rounds])
            row[f"{size}_body_bytes"] = plans[name][size]["body_bytes"]
        row["p50_ratio"] = row["large_p50_ms"] / row["small_p50_ms"]
        row["p99_ratio"] = row["large_p99_ms"] / row["small_p99_ms"]
        row["cpu_ratio"] = row["large_cpu_us"] / row["small_cpu_us"]
        row["errors"] = sum(r[s]["error_count"] for r in rounds for s in ("small", "large"))
        row["target"] = f"<= {LATENCY_TARGET}"
        row["pass"] = (
            row["p50_ratio"] <= LATENCY_TARGET
            and row["p99_ratio"] <= LATENCY_TARGET
            and row["errors"] == 0
        )
        if not row["pass"]:
            summary["failures"].append(f"latency:{name}")
        summary["latency"][name] = row
    return summary


def print_report(args, machine: dict, summary: dict) -> None:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    print()
    print(
        f"Throughput over {args.operations:,} operations (wrk -t1 -c{args.connections}, "
        f"{args.rounds} x {args.duration:g} s, medians; server on CPU "
        f"{(machine['pinned'] or {}).get('servers', '-')}, wrk on CPU "
        f"{(machine['pinned'] or {}).get('wrk', '-')})"
    )
    print(
        f"{'request':<18}{'bare rps':>10}{'dp rps':>10}{'ratio':>7}{'(min-max)':>12}"
        f"{'bare p50/p99 ms':>18}{'dp p50/p99 ms':>17}{'CPU us/req':>14}{'ratio':>7}  target"
    )
    labels = {
        "get_by_id": "GET by id",
        "get_by_id_small": f"GET by id ({args.small_operations // 1000}k)",
        "get_by_id_busy": "GET by id, busy",
        "filtered_list": "filtered list",
    }
    for name, row in summary["throughput"].items():
        target = f"{row['target']} {verdict(row['pass'])}" if "pass" in row else "(info)"
        spread = f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}"
        bare = f"{row['bare_p50_ms']:.2f}/{row['bare_p99_ms']:.2f}"
        ours = f"{row['datapolicy_p50_ms']:.2f}/{row['datapolicy_p99_ms']:.2f}"
        cpu = f"{row['bare_cpu_us']:.0f}/{row['datapolicy_cpu_us']:.0f}"
        print(
            f"{labels[name]:<18}{row['bare_rps']:>10,.0f}{row['datapolicy_rps']:>10,.0f}"
            f"{row['ratio']:>7.2f}{spread:>12}{bare:>18}{ours:>17}{cpu:>14}"
            f"{row['cpu_ratio']:>7.2f}  {target}"
        )
    print(
        "  ratio: datapolicy rps / bare rps (the target); CPU us/req: server CPU time per "
        "request,\n  bare/datapolicy, and its ratio bare/datapolicy: the same figure, less "
        "sensitive to neighbours."
    )
    busy = summary["throughput"].get("get_by_id_busy", {})
    if "commits_per_s" in busy:
        print(
            f"  busy: GET by id while another connection commits {busy['commits_per_s']:.1f} "
            "writes/s to the large database\n  (each drops the operation written from the read "
            "cache)."
        )
    small, large = f"{args.small_operations // 1000}k", f"{args.operations / 1e6:g}M"
    print()
    print(
        f"List latency, one connection, {small} vs {large} operations ({args.rounds} x "
        f"{args.latency_duration:g} s, medians, ms)"
    )
    print(
        f"{'request':<16}{small + ' p50':>9}{large + ' p50':>9}{'ratio':>8}"
        f"{small + ' p99':>9}{large + ' p99':>9}{'ratio':>8}{'CPU us/req':>16}{'ratio':>7}"
        "  target"
    )
    for name, row in summary["latency"].items():
        cpu = f"{row['small_cpu_us']:.0f}/{row['large_cpu_us']:.0f}"
        print(
            f"{name:<16}{row['small_p50_ms']:>9.2f}{row['large_p50_ms']:>9.2f}"
            f"{row['p50_ratio']:>8.2f}{row['small_p99_ms']:>9.2f}{row['large_p99_ms']:>9.2f}"
            f"{row['p99_ratio']:>8.2f}{cpu:>16}"
            f"{row['cpu_ratio']:>7.2f}  <= {LATENCY_TARGET} {verdict(row['pass'])}"
        )
    print()
    for name, row in summary["latency"].items():
        print(f"  {name}: {row['description']}")
    print(
        f"\nmachine: {machine['nproc']} CPUs ({machine['cpu']}), Python {machine['python']}, "
        f"SQLite {machine['sqlite']}, uvicorn {machine['uvicorn']}, {machine['wrk']}; "
        f"load average {machine['loadavg_start'][0]:.2f} -> {machine['loadavg_end'][0]:.2f}"
    )


def _datapolicy_command() -> list[str]:
    script = Path(sys.executable).with_name("datapolicy")
    return [str(script)] if script.exists() else [sys.executable, "-m", "datapolicy"]


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
