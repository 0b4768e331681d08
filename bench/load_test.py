"""Load test of the scaled-out layout: two API processes and export workers on one PostgreSQL.

    python bench/load_test.py                          # 60 s of mixed load, then the drain runs
    python bench/load_test.py --duration 10 --drain-exports 60   # a quick look

What it does, all on loopback against the PostgreSQL at --postgres (a fresh database per phase,
dropped afterwards):
1. **Mixed load.** Starts two `datapolicy serve --workers 0` processes (the demo shop, one data
   directory) and two `datapolicy worker` processes. A baseline is measured first: each request
   kind alone, one request at a time (no queueing). Then for --duration seconds:
   - --clients virtual clients, each alternating between the two API processes, each picking a
     request at random: poll an operation by id (--poll share), or a filtered, ordered list page;
   - beside them, exports started at --export-rate per second (POST exportPersonalData for a
     random demo user), which the workers drain while the pollers poll.
   Reported per request kind: count, errors (any status other than the expected one, and any
   transport error), p50 / p99 / max latency, and p50 / p99 under load divided by the idle
   baseline measured in the same run.
2. **Drain rate.** For 1, 2 and 4 worker processes (--drain-workers): a fresh database, one API
   process, --drain-exports exports queued before any worker runs, then the workers started.
   The rate is counted between the first and the last completion (each operation's
   completedDateTime), so process start-up is not in it. Reported: exports per second and the
   ratio to the one-worker rate (it should rise with workers).
Writes bench/results/load_test-<stamp>.json; exits 1 if any request failed or an export did
not complete.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from api_throughput import API, HOST, Fleet, _datapolicy_command, bearer, free_port, log
from datapolicy.demo import demo_user_id
from populate import RESULTS

NAN = float("nan")
DEMO_USERS = 16  # demo_user_id(0..15) are the demo shop's people


# --- set-up ------------------------------------------------------------------------------------


@contextmanager
def fresh_database(admin_url: str, name: str):
    """A new, empty PostgreSQL database; dropped on the way out."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_api(fleet: Fleet, name: str, data_dir: Path, database: str) -> int:
    port = free_port()
    command = [
        *_datapolicy_command(),
        "serve",
        "--demo",
        "--workers",
        "0",
        "--data-dir",
        str(data_dir),
        "--database",
        database,
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    fleet.start(name, command, port, bearer(data_dir))
    return port


def start_workers(fleet: Fleet, count: int, data_dir: Path, database: str) -> None:
    """Worker processes of one export thread each: no readiness to wait for, they poll."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPOLICY_")}
    for index in range(count):
        output = (fleet.logs / f"worker-{index}.log").open("wb")
        command = [
            *_datapolicy_command(),
            "worker",
            "--demo",
            "--workers",
            "1",
            "--data-dir",
            str(data_dir),
            "--database",
            database,
        ]
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        fleet.processes.append((f"worker-{index}", process))


# --- the load ----------------------------------------------------------------------------------


class Recorder:
    """Latencies and failures per request kind."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {}
        self.errors: dict[str, dict[str, int]] = {}

    def add(self, kind: str, started: float, outcome: str | None) -> None:
        self.latencies.setdefault(kind, []).append(time.perf_counter() - started)
        if outcome is not None:
            counts = self.errors.setdefault(kind, {})
            counts[outcome] = counts.get(outcome, 0) + 1

    def summary(self, seconds: float) -> dict:
        report = {}
        for kind, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            errors = self.errors.get(kind, {})
            report[kind] = {
                "count": len(ordered),
                "per_second": len(ordered) / seconds,
                "errors": errors,
                "error_rate": sum(errors.values()) / len(ordered),
                "p50_ms": 1000 * ordered[len(ordered) // 2],
                "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
                "max_ms": 1000 * ordered[-1],
            }
        return report


async def timed(
    recorder: Recorder,
    client: httpx.AsyncClient,
    kind: str,
    expected: int,
    method: str,
    url: str,
    **kwargs,
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        recorder.add(kind, started, type(exc).__name__)
        return None
    recorder.add(
        kind, started, None if response.status_code == expected else str(response.status_code)
    )
    return response


def list_params(rng: random.Random) -> dict[str, str]:
    if rng.random() < 0.5:
        return {"$filter": f"userId eq '{demo_user_id(rng.randrange(DEMO_USERS))}'", "$top": "20"}
    return {
        "$filter": "status eq 'running' or status eq 'notStarted'",
        "$orderby": "submittedDateTime desc",
        "$top": "20",
    }


async def start_export(
    recorder: Recorder, client: httpx.AsyncClient, base: str, rng: random.Random, storage: str
) -> str | None:
    user = demo_user_id(rng.randrange(DEMO_USERS))
    response = await timed(
        recorder,
        client,
        "POST exportPersonalData",
        202,
        "POST",
        f"{base}/users/{user}/exportPersonalData",
        json={"storageLocation": storage},
    )
    if response is None or response.status_code != 202:
        return None
    return response.headers["location"].rsplit("/", 1)[1]


async def mixed_load(args, ports: list[int], authorization: str, storage: str) -> dict:
    """The idle baseline, then --duration seconds of pollers, listers and exports."""
    bases = [f"http://{HOST}:{port}{API.removesuffix('/dataPolicyOperations')}" for port in ports]
    limits = httpx.Limits(
        max_connections=args.clients + 8, max_keepalive_connections=args.clients + 8
    )
    headers = {"Authorization": authorization}
    rng = random.Random(args.seed)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:
        ids = [
            i
            for i in [
                await start_export(Recorder(), client, bases[n % 2], rng, storage)
                for n in range(20)
            ]
            if i
        ]
        idle = Recorder()
        for n in range(args.baseline_requests):
            base = bases[n % 2]
            await timed(
                idle,
                client,
                "GET by id",
                200,
                "GET",
                f"{base}/dataPolicyOperations/{rng.choice(ids)}",
            )
            await timed(
                idle,
                client,
                "GET list",
                200,
                "GET",
                f"{base}/dataPolicyOperations",
                params=list_params(rng),
            )
        for n in range(min(20, args.baseline_requests)):
            await start_export(idle, client, bases[n % 2], rng, storage)

        loaded = Recorder()
        deadline = time.monotonic() + args.duration

        async def client_loop(number: int) -> None:
            local = random.Random(args.seed + number)
            turn = number
            while time.monotonic() < deadline:
                base = bases[turn % 2]
                turn += 1
                if local.random() < args.poll:
                    await timed(
                        loaded,
                        client,
                        "GET by id",
                        200,
                        "GET",
                        f"{base}/dataPolicyOperations/{local.choice(ids[-200:])}",
                    )
                else:
                    await timed(
                        loaded,
                        client,
                        "GET list",
                        200,
                        "GET",
                        f"{base}/dataPolicyOperations",
                        params=list_params(local),
                    )

        async def exporter() -> None:
            interval = 1 / args.export_rate
            next_at = time.monotonic()
            turn = 0
            while (now := time.monotonic()) < deadline:
                if now < next_at:
                    await asyncio.sleep(next_at - now)
                next_at += interval
                operation = await start_export(loaded, client, bases[turn % 2], rng, storage)
                turn += 1
                if operation:
                    ids.append(operation)

        started = time.monotonic()
        await asyncio.gather(exporter(), *(client_loop(n) for n in range(args.clients)))
        seconds = time.monotonic() - started
    baseline = idle.summary(1)
    report = loaded.summary(seconds)
    for kind, figures in report.items():
        if kind in baseline:
            figures["p50_vs_idle"] = figures["p50_ms"] / baseline[kind]["p50_ms"]
            figures["p99_vs_idle"] = figures["p99_ms"] / baseline[kind]["p99_ms"]
    return {"seconds": seconds, "idle": baseline, "loaded": report, "operations": ids}


def wait_complete(port: int, authorization: str, operations: list[str], timeout: float) -> dict:
    """Poll until every operation is finished; their statuses and completion times."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": authorization}
    finished: dict[str, dict] = {}
    with httpx.Client(base_url=f"http://{HOST}:{port}{API}", headers=headers, timeout=60) as client:
        while len(finished) < len(operations) and time.monotonic() < deadline:
            for operation in operations:
                if operation in finished:
                    continue
                body = client.get(f"/{operation}").json()
                if body["status"] in ("complete", "failed"):
                    finished[operation] = body
            time.sleep(0.5)
    return finished


def drain(args, admin_url: str, data_dir: Path, workers: int, logs: Path) -> dict:
    """--drain-exports exports queued first, then `workers` worker processes start."""
    with fresh_database(admin_url, f"datapolicy_drain_{workers}") as database:
        fleet = Fleet(logs=logs, server_cpu=None)
        try:
            port = start_api(fleet, f"drain-api-{workers}", data_dir, database)
            authorization = fleet.authorization[port]
            storage = str(data_dir / "exports" / f"drain-{workers}")
            Path(storage).mkdir(parents=True, exist_ok=True)
            rng = random.Random(args.seed)
            with httpx.Client(headers={"Authorization": authorization}, timeout=60) as client:
                base = f"http://{HOST}:{port}/v1.0"
                operations = []
                for _ in range(args.drain_exports):
                    user = demo_user_id(rng.randrange(DEMO_USERS))
                    response = client.post(
                        f"{base}/users/{user}/exportPersonalData", json={"storageLocation": storage}
                    )
                    response.raise_for_status()
                    operations.append(response.headers["location"].rsplit("/", 1)[1])
            log(f"drain: {len(operations)} exports queued; starting {workers} worker(s)")
            started = time.monotonic()
            start_workers(fleet, workers, data_dir, database)
            finished = wait_complete(port, authorization, operations, args.drain_timeout)
            wall = time.monotonic() - started
        finally:
            fleet.stop()
        shutil.rmtree(storage, ignore_errors=True)
    completed = [body for body in finished.values() if body["status"] in ("complete",)]
    times = sorted(datetime.fromisoformat(body["completedDateTime"]) for body in completed)
    span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else float("nan")
    return {
        "workers": workers,
        "exports": len(operations),
        "completed": len(completed),
        "wall_seconds": wall,
        "per_second": (len(times) - 1) / span if span > 0 else float("nan"),
    }


# --- the run -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL database to create the run's databases from",
    )
    parser.add_argument("--duration", type=float, default=60, help="seconds of mixed load")
    parser.add_argument("--clients", type=int, default=32, help="concurrent pollers/listers")
    parser.add_argument("--poll", type=float, default=0.8, help="share of GET by id among them")
    parser.add_argument("--export-rate", type=float, default=5, help="exports started per second")
    parser.add_argument("--load-workers", type=int, default=2, help="worker processes under load")
    parser.add_argument("--baseline-requests", type=int, default=200)
    parser.add_argument("--drain-exports", type=int, default=200)
    parser.add_argument("--drain-workers", default="1,2,4")
    parser.add_argument("--drain-timeout", type=float, default=600)
    parser.add_argument("--seed", type=int, default=20261129)
    args = parser.parse_args()

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RESULTS / f"load-{stamp}"
    run_dir.mkdir(parents=True)
    load_before = os.getloadavg()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="datapolicy-load-") as tmp:
        data_dir = Path(tmp) / "data"
        with fresh_database(args.postgres, "datapolicy_load") as database:
            fleet = Fleet(logs=run_dir, server_cpu=None)
            try:
                ports = [start_api(fleet, f"api-{n}", data_dir, database) for n in range(2)]
                start_workers(fleet, args.load_workers, data_dir, database)
                storage = data_dir / "exports" / "load"
                storage.mkdir(parents=True, exist_ok=True)
                log(
                    f"mixed load: {args.duration:.0f} s, {args.clients} clients, "
                    f"{args.export_rate}/s exports, 2 API + {args.load_workers} worker processes"
                )
                mixed = asyncio.run(
                    mixed_load(args, ports, fleet.authorization[ports[0]], str(storage))
                )
                finished = wait_complete(
                    ports[0], fleet.authorization[ports[0]], mixed["operations"], args.drain_timeout
                )
            finally:
                fleet.stop()
        statuses: dict[str, int] = {}
        for body in finished.values():
            statuses[body["status"]] = statuses.get(body["status"], 0) + 1
        unfinished = len(mixed.pop("operations")) - len(finished)
        mixed["exports_after_load"] = {**statuses, "unfinished": unfinished}
        drains = []
        for workers in (int(n) for n in args.drain_workers.split(",")):
            drains.append(drain(args, args.postgres, data_dir, workers, run_dir))
            log(f"drain with {workers} worker(s): {drains[-1]['per_second']:.1f} exports/s")
    base_rate = drains[0]["per_second"]
    for result in drains:
        result["vs_one_worker"] = result["per_second"] / base_rate

    for kind, figures in mixed["loaded"].items():
        if figures["errors"]:
            failures.append(f"{kind}: {figures['errors']}")
    if unfinished or set(statuses) - {"complete"}:
        failures.append(f"exports after the load: {mixed['exports_after_load']}")
    for result in drains:
        if result["completed"] != result["exports"]:
            failures.append(
                f"drain with {result['workers']}: {result['completed']}/{result['exports']}"
            )

    report = {
        "when": stamp,
        "arguments": vars(args),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "cpus": os.cpu_count(),
        "mixed": mixed,
        "drain": drains,
        "failures": failures,
    }
    (RESULTS / f"load_test-{stamp}.json").write_text(json.dumps(report, indent=2))
    print_report(report)
    sys.exit(1 if failures else 0)


def print_report(report: dict) -> None:
    mixed = report["mixed"]
    print(f"\nMixed load, {mixed['seconds']:.0f} s, load average {report['load_average']}")
    print(
        f"{'request':<26}{'count':>8}{'/s':>8}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'p50/idle':>10}{'p99/idle':>10}"
    )
    for kind, f in mixed["loaded"].items():
        print(
            f"{kind:<26}{f['count']:>8}{f['per_second']:>8.1f}{f['error_rate']:>8.2%}"
            f"{f['p50_ms']:>9.1f}{f['p99_ms']:>9.1f}{f['max_ms']:>9.1f}"
            f"{f.get('p50_vs_idle', NAN):>10.2f}{f.get('p99_vs_idle', NAN):>10.2f}"
        )
    print(f"exports started under load: {mixed['exports_after_load']}")
    print(f"\n{'drain':<12}{'exports':>9}{'wall s':>9}{'exports/s':>11}{'vs 1 worker':>13}")
    for d in report["drain"]:
        print(
            f"{d['workers']:>2} worker(s){d['exports']:>9}{d['wall_seconds']:>9.1f}"
            f"{d['per_second']:>11.2f}{d['vs_one_worker']:>13.2f}"
        )
    median_errors = statistics.fmean(f["error_rate"] for f in mixed["loaded"].values())
    print(f"\nmean error rate {median_errors:.3%}; failures: {report['failures'] or 'none'}")


if __name__ == "__main__":
    main()
