"""Soak under faults: many exports through a scaled-out deployment while its workers are killed
and frozen and its database goes away for a while; then every export is accounted for.

    python bench/soak.py                     # 1,000 exports, a worker struck every ~1 s
    python bench/soak.py --exports 100       # a quick look

What it does, all on loopback against the PostgreSQL at --postgres (a scratch schema of its own,
dropped at the end):
1. **The deployment** (tests/cluster.py, as the chaos test runs it): two `datapolicy serve
   --workers 0` and three `datapolicy worker` processes (two export threads each) on one data
   directory with the demo shop, a 1.5 s lease, each export waiting --slow-source seconds in a
   PostgreSQL query so that faults meet exports in progress. Every process reaches the store
   through a TCP forwarder in this process (tests/forwarder.py); the slow source reaches
   PostgreSQL directly.
2. **Exports**: --exports starts at --rate per second, alternating between the two APIs, each
   with a `client-request-id` of its own. A start answered 503, 429 or not at all is sent again
   with the same key (after Retry-After) until it is accepted; --repeat of the accepted ones are
   sent again to the other API, and --race of them go to both APIs at once from the start: every
   answer for one key must name one operation.
3. **Faults**, every --chaos-interval seconds (jittered): a worker holding a lease (or any
   running one) is killed with SIGKILL and started again, or, one act in --pause-every, frozen
   with SIGSTOP past its lease and resumed (SIGCONT) 1.5-3 leases later. Once, after
   --outage-at of the starts, the database "restarts": the forwarder cuts every store
   connection and refuses new ones for --outage seconds. Chaos goes on until every export has
   finished (complete, or failed for good).
4. **Accounting**, from the store itself and the exports directory (after the sweep of dead
   attempts' files has had time to run): lost (accepted, but neither complete nor failed),
   duplicated (two operations for one key, more operations than keys, or an operation
   completed twice per the workers' logs), unverifiable (a complete operation whose package is
   missing, fails `datapolicy verify` or names another operation), stray files (anything in the
   exports directory that is not a complete operation's package); failed exports with their
   reasons; kills, pauses, outage seconds, wall time.

Seeded (--seed, printed). Bounded: starts give up after --start-timeout seconds each, and the
run after --completion-timeout seconds past the last start. Writes bench/results/soak-<stamp>.json
with the processes' logs in bench/results/soak-<stamp>/; exits 1 unless lost, duplicated,
unverifiable and stray are all 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

# The deployment, the forwarder and the scratch schema are the chaos test's (tests/): imported,
# not copied. tests/conftest.py starts processes on a store of its own choosing unless told
# SQLite; the soak names its own with --database.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ["DATAPOLICY_TEST_STORE"] = "sqlite"

from cluster import (
    COMPLETED,
    LEASE_S,
    Cluster,
    cluster_config,
    lease_holders,
    manifest_of,
    running_cluster,
)
from databases import POSTGRESQL, scratch_database
from datapolicy.demo import demo_user_id, prepare_demo
from datapolicy.engine.verify import verify_package
from forwarder import TcpForwarder
from populate import RESULTS

DEMO_USERS = 8
WORKER_PROCESSES = 3
RETRIED = {429, 502, 503, 504}  # a start sent again with its key
PAUSE_S = (LEASE_S * 1.5, LEASE_S * 3)  # a SIGSTOPped worker sleeps past its lease
SWEEP_TIMEOUT_S = LEASE_S * 10 + 30  # for an idle worker's sweep to remove dead attempts' files


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


@dataclass
class Starts:
    """What the clients sent and were answered, per export number."""

    ids: dict[int, set[str]] = field(default_factory=dict)  # every operation named for a key
    refused: dict[int, str] = field(default_factory=dict)  # never accepted: the last answer
    resent: int = 0  # sends after a 503, 429 or transport error
    repeats: int = 0  # deliberate second sends of an accepted start
    races: int = 0  # first sends to both APIs at once
    answers: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def named(self, number: int, operation: str) -> None:
        with self.lock:
            self.ids.setdefault(number, set()).add(operation)


@dataclass
class Chaos:
    kills: int = 0
    pauses: int = 0
    exits: int = 0  # worker processes that ended without being killed
    outage_s: float = 0.0
    paused: dict[int, float] = field(default_factory=dict)  # worker index -> when to resume


def post_start(
    client: httpx.Client, number: int, key: str, storage: str, starts: Starts
) -> httpx.Response | str:
    """One send of start `number`: the response, or the transport error's name."""
    try:
        response = client.post(
            f"/users/{demo_user_id(number % DEMO_USERS)}/exportPersonalData",
            json={"storageLocation": storage},
            headers={"client-request-id": key},
        )
    except httpx.HTTPError as exc:
        with starts.lock:
            starts.answers[type(exc).__name__] += 1
        return type(exc).__name__
    with starts.lock:
        starts.answers[str(response.status_code)] += 1
    if response.status_code == 202:
        starts.named(number, response.headers["location"].rsplit("/", 1)[1])
    return response


def start_export(
    number: int,
    clients: list[httpx.Client],
    storage: str,
    args: argparse.Namespace,
    seed: int,
    at: float,
    starts: Starts,
) -> None:
    """Start export `number` at time `at`, sending it again with its key until it is accepted;
    then, for some, once more to the other API."""
    time.sleep(max(0.0, at - time.monotonic()))
    rng = random.Random(f"{seed}-{number}")
    key = f"soak-{seed}-{number}"
    turn = number % 2
    if rng.random() < args.race:
        with starts.lock:
            starts.races += 1
        with ThreadPoolExecutor(2) as both:
            answers = list(both.map(lambda c: post_start(c, number, key, storage, starts), clients))
    else:
        answers = [post_start(clients[turn], number, key, storage, starts)]
    deadline = time.monotonic() + args.start_timeout
    while number not in starts.ids:
        last = answers[-1]
        if isinstance(last, httpx.Response) and last.status_code not in RETRIED:
            starts.refused[number] = f"{last.status_code} {last.text[:200]}"
            return
        if time.monotonic() > deadline:
            starts.refused[number] = last if isinstance(last, str) else str(last.status_code)
            return
        wait = 1.0
        if isinstance(last, httpx.Response) and last.headers.get("retry-after", "").isdigit():
            wait = min(float(last.headers["retry-after"]), 5.0)
        time.sleep(wait)
        turn = 1 - turn
        with starts.lock:
            starts.resent += 1
        answers = [post_start(clients[turn], number, key, storage, starts)]
    if rng.random() < args.repeat:
        with starts.lock:
            starts.repeats += 1
        while True:  # the repeat too is sent again until answered, as a client would
            answer = post_start(clients[1 - turn], number, key, storage, starts)
            if isinstance(answer, httpx.Response) and answer.status_code not in RETRIED:
                return
            if time.monotonic() > deadline:
                return
            time.sleep(1.0)


def unfinished(store: Engine) -> int:
    with store.connect() as connection:
        return connection.execute(
            text("SELECT count(*) FROM operations WHERE status IN ('notStarted', 'running')")
        ).scalar_one()


def strike(cluster: Cluster, chaos: Chaos, store: Engine, rng: random.Random, pause_every: int):
    """One act of chaos on a worker at work: SIGKILL and a new process, or SIGSTOP until
    `chaos.paused` says to resume it."""
    try:
        leased = lease_holders(store)
    except SQLAlchemyError:  # the soak's own direct connection: strike at random instead
        leased = set()
    running = [
        i
        for i in range(WORKER_PROCESSES)
        if i not in chaos.paused and cluster.workers[i].poll() is None and cluster.running(i)
    ]
    working = [i for i in running if cluster.workers[i].pid in leased] or running
    if not working:
        return
    index = rng.choice(working)
    victim = cluster.workers[index]
    if (chaos.kills + chaos.pauses) % pause_every == pause_every - 1:
        victim.send_signal(signal.SIGSTOP)
        chaos.paused[index] = time.monotonic() + rng.uniform(*PAUSE_S)
        chaos.pauses += 1
    else:
        victim.kill()
        victim.wait()
        cluster.start_worker(index)
        chaos.kills += 1


def tend(cluster: Cluster, chaos: Chaos) -> None:
    """Resume the paused workers whose time has come; start again any that ended by itself."""
    now = time.monotonic()
    for index, until in list(chaos.paused.items()):
        if now >= until:
            cluster.workers[index].send_signal(signal.SIGCONT)
            del chaos.paused[index]
    for index, process in enumerate(cluster.workers):
        if process.poll() is not None:
            chaos.exits += 1
            log(f"worker {index} exited by itself ({process.returncode}); starting it again")
            cluster.start_worker(index)


def account(
    store: Engine, exports: Path, starts: Starts, cluster: Cluster, args: argparse.Namespace
) -> dict:
    """Lost, duplicated, unverifiable, stray; failures and their reasons."""
    with store.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, status, error_code, error_message, attempts, worker_losses "
                "FROM operations"
            )
        ).all()
    by_id = {row.id: row for row in rows}
    accepted = {number: min(ids) for number, ids in starts.ids.items()}
    two_for_one_key = sorted(n for n, ids in starts.ids.items() if len(ids) > 1)
    lost = sorted(
        operation
        for operation in accepted.values()
        if operation not in by_id or by_id[operation].status not in ("complete", "failed")
    )
    complete = {row.id for row in rows if row.status == "complete"}
    completions = Counter(COMPLETED.findall(cluster.worker_logs()))
    completed_twice = sorted(op for op, count in completions.items() if count > 1)
    unverifiable = []
    for operation in sorted(complete):
        package = exports / f"{operation}.zip"
        if not package.exists():
            unverifiable.append(f"{operation}: no package")
        elif problems := verify_package(package):
            unverifiable.append(f"{operation}: {problems[:3]}")
        elif manifest_of(package)["operationId"] != operation:
            unverifiable.append(f"{operation}: the package names another operation")
    failed = [row for row in rows if row.status == "failed"]
    reasons = Counter(f"{row.error_code}: {(row.error_message or '')[:160]}" for row in failed)
    return {
        "operations_in_store": len(rows),
        "accepted": len(accepted),
        "refused": len(starts.refused),
        "refused_reasons": dict(Counter(starts.refused.values()).most_common(10)),
        "complete": len(complete),
        "failed": len(failed),
        "failed_reasons": dict(reasons.most_common(10)),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "duplicated": len(two_for_one_key)
        + max(0, len(rows) - len(accepted))
        + len(completed_twice),
        "duplicated_detail": {
            "keys_naming_two_operations": two_for_one_key[:20],
            "operations_beyond_keys": max(0, len(rows) - len(accepted)),
            "completed_twice": completed_twice[:20],
        },
        "unverifiable": len(unverifiable),
        "unverifiable_detail": unverifiable[:20],
        "attempts_max": max((row.attempts for row in rows), default=0),
        "worker_losses_total": sum(row.worker_losses for row in rows),
        "taken_over": sum(1 for row in rows if row.worker_losses > 0),
        "packages_expected": sorted(f"{operation}.zip" for operation in complete),
    }


def stray_files(exports: Path, expected: list[str]) -> list[str]:
    present = sorted(path.name for path in exports.iterdir()) if exports.exists() else []
    return sorted(set(present) - set(expected))


def soak(args: argparse.Namespace, seed: int, run_dir: Path, store: str) -> dict:
    rng = random.Random(seed)
    data_dir = run_dir / "data"
    prepare_demo(data_dir)  # made once here, not raced by five processes
    real = make_url(store)
    forwarder = TcpForwarder(real.host or "127.0.0.1", real.port or 5432)
    forwarder.open()
    forwarded = real.set(host="127.0.0.1", port=forwarder.port).render_as_string(
        hide_password=False
    )
    config = run_dir / "datapolicy.toml"
    config.write_text(
        cluster_config(
            data_dir,
            store,
            args.slow_source,
            max_worker_losses=args.max_worker_losses,
            pool_timeout_s=args.pool_timeout,
        )
    )
    direct = create_engine(store, poolclass=NullPool)
    exports = data_dir / "exports" / "soak"
    starts = Starts()
    chaos = Chaos()
    try:
        with running_cluster(run_dir, data_dir, config, forwarded, 2, WORKER_PROCESSES) as cluster:
            log(f"deployment up: 2 API + {WORKER_PROCESSES} worker processes; starting exports")
            clients = [api.client(timeout=60) for api in cluster.apis]
            started = time.monotonic()
            start_span = args.exports / args.rate
            outage_at = started + start_span * args.outage_at
            outage_end = None
            with ThreadPoolExecutor(args.clients) as pool:
                futures = [
                    pool.submit(
                        start_export,
                        number,
                        clients,
                        str(exports),
                        args,
                        seed,
                        started + number / args.rate,
                        starts,
                    )
                    for number in range(args.exports)
                ]
                deadline = started + start_span + args.start_timeout + args.completion_timeout
                act_at = started
                reported = started
                while time.monotonic() < deadline:
                    act_at = max(act_at, time.monotonic()) + args.chaos_interval * rng.uniform(
                        0.5, 1.5
                    )
                    time.sleep(max(0.0, act_at - time.monotonic()))
                    now = time.monotonic()
                    if outage_end is None and now >= outage_at and args.outage > 0:
                        log(f"database outage: store connections cut for {args.outage:.0f} s")
                        forwarder.close()
                        outage_end = now + args.outage
                    if outage_end is not None and chaos.outage_s == 0 and now >= outage_end:
                        forwarder.open()
                        chaos.outage_s = now - (outage_end - args.outage)
                        log(f"database back after {chaos.outage_s:.1f} s")
                    tend(cluster, chaos)
                    outage_done = args.outage <= 0 or chaos.outage_s > 0
                    if all(f.done() for f in futures) and outage_done and unfinished(direct) == 0:
                        break
                    strike(cluster, chaos, direct, rng, args.pause_every)
                    if now - reported > 30:
                        reported = now
                        log(
                            f"{len(starts.ids)} accepted, {unfinished(direct)} unfinished, "
                            f"{chaos.kills} kills, {chaos.pauses} pauses, {chaos.exits} exits"
                        )
                for future in futures:
                    future.result()
            for client in clients:
                client.close()
            for index in list(chaos.paused):
                cluster.workers[index].send_signal(signal.SIGCONT)
            chaos.paused.clear()
            finished_at = time.monotonic()
            log("chaos over; accounting (after the sweep has had its time)")
            figures = account(direct, exports, starts, cluster, args)
            expected = figures.pop("packages_expected")
            sweep_deadline = time.monotonic() + SWEEP_TIMEOUT_S
            while stray_files(exports, expected) and time.monotonic() < sweep_deadline:
                tend(cluster, chaos)
                time.sleep(0.5)
            stray = stray_files(exports, expected)
    finally:
        direct.dispose()
        forwarder.shut_down()
    return {
        **figures,
        "stray": len(stray),
        "stray_files": stray[:20],
        "kills": chaos.kills,
        "pauses": chaos.pauses,
        "worker_exits": chaos.exits,
        "outage_seconds": round(chaos.outage_s, 1),
        "wall_seconds": round(finished_at - started, 1),
        "starts": {
            "answers": dict(starts.answers),
            "resent": starts.resent,
            "repeats": starts.repeats,
            "races": starts.races,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="the PostgreSQL database the scratch schema is made in",
    )
    parser.add_argument("--exports", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=4, help="exports started per second")
    parser.add_argument("--clients", type=int, default=48, help="client threads starting them")
    parser.add_argument("--repeat", type=float, default=0.1, help="share sent again when done")
    parser.add_argument("--race", type=float, default=0.05, help="share sent to both at once")
    parser.add_argument("--chaos-interval", type=float, default=1.0, help="seconds between acts")
    parser.add_argument("--pause-every", type=int, default=4, help="one act in N is a SIGSTOP")
    parser.add_argument("--outage", type=float, default=20, help="seconds the database is away")
    parser.add_argument("--outage-at", type=float, default=0.5, help="share of the starts before")
    parser.add_argument("--slow-source", type=float, default=0.15, help="seconds per export")
    parser.add_argument("--max-worker-losses", type=int, default=10)
    parser.add_argument("--pool-timeout", type=float, default=2, help="[store] pool_timeout")
    parser.add_argument("--start-timeout", type=float, default=120)
    parser.add_argument("--completion-timeout", type=float, default=600)
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    log(f"soak: {args.exports} exports, seed {seed} (--seed {seed} replays the chaos)")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RESULTS / f"soak-{stamp}"
    run_dir.mkdir(parents=True)
    load_before = os.getloadavg()
    with scratch_database(POSTGRESQL, run_dir, within=make_url(args.postgres)) as store:
        figures = soak(args, seed, run_dir, store)
    report = {
        "when": stamp,
        "seed": seed,
        "arguments": vars(args),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        **figures,
    }
    (RESULTS / f"soak-{stamp}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    verdict = {key: figures[key] for key in ("lost", "duplicated", "unverifiable", "stray")}
    log(
        f"soak: {args.exports} exports (seed {seed}): {figures['complete']} complete, "
        f"{figures['failed']} failed, {figures['refused']} never accepted; "
        + ", ".join(f"{count} {what}" for what, count in verdict.items())
        + f"; {figures['kills']} kills, {figures['pauses']} pauses, "
        f"{figures['outage_seconds']} s outage, {figures['wall_seconds']} s"
    )
    sys.exit(1 if any(verdict.values()) else 0)


if __name__ == "__main__":
    main()
