"""One export in a process of its own, for bench/export_throughput.py: its peak RSS is then the
export's alone.

    python bench/export_child.py --config datapolicy.toml --data-dir DIR --store ops.sqlite3

The store holds one queued operation (made by the caller). This process builds the export
context from the configuration exactly as `datapolicy worker` does (checking every source,
which reads the tables' schema, before the first export) and runs the service's own
worker once (`Worker.run_once`: claim, lease heartbeat, `export()`, finish, publish, complete),
then prints one JSON line: the seconds `run_once` took, the part of them spent in `os.fsync`
(timed by a wrapper, behaviour unchanged), this process's CPU seconds, and its memory (VmRSS
before the export, VmHWM after: the peak resident set of the whole process).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def _status_kb(field: str) -> int:
    """A `kB` field of /proc/self/status (VmRSS, VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


_fsync_seconds = 0.0
_real_fsync = os.fsync


def _timed_fsync(fd: int) -> None:
    global _fsync_seconds
    started = time.perf_counter()
    try:
        _real_fsync(fd)
    finally:
        _fsync_seconds += time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()

    from datapolicy.config import load_config
    from datapolicy.engine import build_context
    from datapolicy.engine.worker import Worker
    from datapolicy.store import SQLiteDatabase
    from datapolicy.store.queue import OperationQueue

    os.fsync = _timed_fsync  # the local target's fsync of the package and of its directory
    config = load_config(args.config)
    context = build_context(config, args.data_dir)
    for source in context.sources:  # as `datapolicy worker` does on start (server.py)
        source.check()
    database = SQLiteDatabase(args.store)
    worker = Worker(OperationQueue(database), context, config.engine)
    rss_before_kb = _status_kb("VmRSS")
    cpu_before = os.times()
    started = time.perf_counter()
    worked = worker.run_once()
    seconds = time.perf_counter() - started
    cpu_after = os.times()
    for source in context.sources:
        source.close()
    database.close()
    print(
        json.dumps(
            {
                "worked": worked,
                "seconds": seconds,
                "fsync_seconds": _fsync_seconds,
                "cpu_seconds": (cpu_after.user - cpu_before.user)
                + (cpu_after.system - cpu_before.system),
                "rss_before_kb": rss_before_kb,
                "hwm_kb": _status_kb("VmHWM"),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
