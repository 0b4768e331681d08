"""Instructions per request, datapolicy against the bare floor: a load-independent companion to
bench/api_throughput.py, for a shared or noisy machine.

    python bench/request_cost.py                      # 10,000 operations, 300 requests a case
    python bench/request_cost.py --operations 100000 --requests 500

Both servers run under `valgrind --tool=callgrind` (each in its own process, as
api_throughput.py starts them, but `datapolicy serve --workers 0`: an idle export thread's claim
every second would be counted against the requests of a run slowed some fifty times; rate limits
on but never spent, and bench/bare_server.py with responses of the real size and headers). For
each case the server's counters are zeroed (`callgrind_control -z`), --requests requests are
sent one after the other on one keep-alive connection, and the counters are dumped
(`callgrind_control -d`): the instructions the whole server process executed (all its threads:
the event loop, the threads that read list pages, uvicorn's timers) divided by the number of
requests. The audit buffer's flush, which runs by the clock, is set to 60 s (see `main`), so it
is left out: its cost per request is small at full speed, where a flush covers thousands.
Instruction counts do not depend on what else the machine runs, so the ratio bare / datapolicy
is repeatable where requests per second are not; it stands for api_throughput.py's throughput
ratio (a request's CPU time is roughly proportional to its instructions, though cache misses and
system calls are not weighed: the figure is an estimate of that ratio, not the benchmark's
figure).

The cases:
- `get_cached`: GET by id of operations read once before (the read cache holds them);
- `get_uncached`: GET by id of operations not read before: the store's read path, as on a store
  being written to, whose every commit empties the read cache;
- `filtered_list`: `status eq 'failed'`, `submittedDateTime desc`, first page of 100.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from api_throughput import (
    API,
    BENCH,
    HOST,
    bearer,
    busiest_user,
    free_port,
    http_get,
    resolve_path,
    response_spec,
    sample_ids,
    scenarios,
)
from datapolicy.settings import DATABASE_FILE
from datapolicy.store import OperationStore, SQLiteDatabase
from populate import ensure_database

STARTUP_TIMEOUT_S = 600  # Python's imports under valgrind take minutes on a loaded machine


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Server:
    """A server process under callgrind."""

    def __init__(self, name: str, command: list[str], port: int, authorization: str, out: Path):
        self.name = name
        self.port = port
        self.authorization = authorization
        self.out = out / f"callgrind.{name}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPOLICY_")}
        valgrind = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={self.out}.%p",
            "--dump-instr=no",
            "--collect-jumps=no",
        ]
        self.log_file = (out / f"{name}.log").open("wb")
        self.process = subprocess.Popen(
            [*valgrind, *command],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{name} exited: see {self.log_file.name}")
            try:
                if http_get(port, f"{API}?$top=1", authorization)[0] == 200:
                    log(f"{name} is up (pid {self.process.pid})")
                    return
            except OSError:
                pass
            time.sleep(1)
        raise SystemExit(f"{name} did not start within {STARTUP_TIMEOUT_S} s")

    def control(self, option: str) -> None:
        subprocess.run(
            ["callgrind_control", option, str(self.process.pid)],
            check=True,
            capture_output=True,
        )

    def instructions(self, paths: list[str]) -> int:
        """The instructions the process executed while answering `paths`, in order."""
        self.control("-z")
        connection = http.client.HTTPConnection(HOST, self.port, timeout=600)
        try:
            for path in paths:
                status, _, _ = http_get(self.port, path, self.authorization, connection)
                if status != 200:
                    raise SystemExit(f"{self.name}: GET {path} answered {status}")
        finally:
            connection.close()
        before = set(self.out.parent.glob(self.out.name + ".*"))
        self.control("-d")
        (dump,) = set(self.out.parent.glob(self.out.name + ".*")) - before
        totals = re.search(rb"^(?:summary|totals): (\d+)", dump.read_bytes(), re.MULTILINE)
        if totals is None:
            raise SystemExit(f"no totals in {dump}")
        return int(totals.group(1))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300, help="requests per case")
    parser.add_argument("--only", choices=["datapolicy", "bare"], help="measure one server")
    args = parser.parse_args()

    data_dir = ensure_database(args.operations, log=log)
    database_file = data_dir / DATABASE_FILE
    count = args.requests
    ids = sample_ids(database_file, 2 * count)
    cached = [f"{API}/{i}" for i in ids[:count]]
    uncached = [f"{API}/{i}" for i in ids[count:]]
    filtered = next(s for s in scenarios(busiest_user(database_file)) if s.name == "filtered_first")
    database = SQLiteDatabase(database_file)
    list_path, _ = resolve_path(OperationStore(database), filtered)
    database.close()
    cases = {
        "get_cached": cached,
        "get_uncached": uncached,
        "filtered_list": [list_path] * count,
    }

    work = Path(tempfile.mkdtemp(prefix="request-cost-"))
    limits = work / "limits.toml"
    # The audit buffer's flush runs every flush_seconds of wall-clock time, which valgrind
    # stretches some fifty times: at the default 0.2 s, each flush (a signed, hashed block and
    # a commit) would be spread over a few requests instead of the thousands it covers at
    # full speed, and would count as many times its share. 60 s (the most allowed) leaves
    # the flush out of the figures, as it nearly is of a real request's cost.
    limits.write_text("[limits]\nread_rate = 1e9\nwrite_rate = 1e9\n[audit]\nflush_seconds = 60\n")
    authorization = bearer(data_dir)
    results: dict[str, dict[str, float]] = {}
    port = free_port()
    datapolicy = [sys.executable, "-m", "datapolicy", "serve", "--host", HOST, "--port", str(port)]
    datapolicy += ["--data-dir", str(data_dir), "--workers", "0", "--config", str(limits)]
    server = Server("datapolicy", datapolicy, port, authorization, work)
    try:
        spec = {
            "entity": response_spec(port, cached[:50], authorization),
            "list": response_spec(port, [list_path], authorization),
        }
        if args.only != "bare":
            http_get(port, list_path, authorization)
            for name, paths in cases.items():
                if name == "get_cached":
                    server.instructions(paths)  # read once: now in the read cache
                results.setdefault(name, {})["datapolicy"] = server.instructions(paths) / count
                log(f"datapolicy {name}: {results[name]['datapolicy']:,.0f} instructions")
    finally:
        server.stop()
    if args.only != "datapolicy":
        (work / "bare_spec.json").write_text(json.dumps(spec))
        port = free_port()
        bare = [sys.executable, str(BENCH / "bare_server.py"), "--port", str(port)]
        bare += ["--spec", str(work / "bare_spec.json")]
        server = Server("bare", bare, port, authorization, work)
        try:
            server.instructions(cached)  # the same warm-up as datapolicy's
            for name, paths in cases.items():
                results.setdefault(name, {})["bare"] = server.instructions(paths) / count
                log(f"bare {name}: {results[name]['bare']:,.0f} instructions")
        finally:
            server.stop()
    for figures in results.values():
        if "bare" in figures and "datapolicy" in figures:
            figures["ratio"] = figures["bare"] / figures["datapolicy"]
    print(json.dumps({"operations": args.operations, "requests": count, **results}, indent=1))


if __name__ == "__main__":
    main()
