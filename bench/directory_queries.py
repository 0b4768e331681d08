"""Directory query benchmark: Graph's `/users` queries on a large user directory in PostgreSQL.

    python bench/directory_queries.py                    # 1,000,000 people
    python bench/directory_queries.py --people 100000 --requests 500   # a quick look

What it does:
1. Makes (or reuses) a PostgreSQL schema `bench_directory_<N>` in --url holding a table
   `people` of N people (id, display_name, mail, upn), loaded with COPY, and the indexes the
   directory's queries use (docs/configuration.md, "The user directory"):
   `(id COLLATE "C")`, `lower(mail COLLATE "C")`, `lower(upn COLLATE "C")` and
   `(lower(display_name COLLATE "C"), (id COLLATE "C"))`; then ANALYZE.
2. Starts `datapolicy serve --workers 0` (pinned to CPU 0 with taskset when there is one) with
   that table as its `[directory]`, on loopback.
3. For each query kind, sends --requests requests one after another on one keep-alive
   connection (so the time is the service's, not queueing), each for a different person
   drawn at random, and reports p50, p90 and p99 of the wall time from request to the whole
   response; and the plan PostgreSQL chooses for the mail lookup (EXPLAIN), to show the index
   is used.

The target (issue "Graph parity, round two"): `/users?$filter=mail eq '...'` in under 5 ms at
the median on 1,000,000 people. Results go to bench/results/directory-<stamp>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import psycopg

from api_throughput import HOST, Fleet, _datapolicy_command, free_port, http_get, log
from datapolicy.auth.keys import signing_key
from datapolicy.auth.permissions import EXPORT, READ_USERS
from datapolicy.auth.tokens import issue_token
from datapolicy.config import AuthConfig
from populate import RESULTS

TARGET_MS = 5.0  # p50 of the mail lookup, at most
SEED = 20261206
# Ascending with nulls first, as OData orders (`$orderby=x desc` reads the same index backwards).
INDEXES = (
    'CREATE INDEX people_id_c ON people ((id COLLATE "C") NULLS FIRST)',
    'CREATE INDEX people_mail ON people (lower(mail COLLATE "C"))',
    'CREATE INDEX people_upn ON people (lower(upn COLLATE "C"))',
    "CREATE INDEX people_name ON people "
    '(lower(display_name COLLATE "C") NULLS FIRST, (id COLLATE "C") NULLS FIRST)',
)
# Marks a complete schema made with these indexes (a schema made otherwise is made again).
MARK = "complete " + hashlib.blake2s(repr(INDEXES).encode(), digest_size=6).hexdigest()
FIRST = ("Ada", "Grace", "Alan", "Émilie", "Zoë", "Sean", "Siobhán", "Kurt", "Edsger", "Barbara")
LAST = ("Lovelace", "Hopper", "Turing", "du Châtelet", "O'Brien", "Gödel", "Dijkstra", "Liskov")


def person(index: int) -> tuple[str, str, str, str]:
    first, last = FIRST[index % len(FIRST)], LAST[(index // len(FIRST)) % len(LAST)]
    local = f"{first}.{last}.{index}".replace(" ", "").replace("'", "")
    return (
        f"{index:08x}-0000-4000-8000-{index:012x}",
        f"{first} {last} {index}",
        f"{local}@Example.com",
        f"{local.lower()}@example.onmicrosoft.com",
    )


def ensure_directory(url: str, people: int) -> str:
    """The schema holding `people` people (made now unless a complete one exists)."""
    schema = f"bench_directory_{people}"
    with psycopg.connect(url, autocommit=True) as connection:
        done = (
            connection.execute(
                "SELECT obj_description(%s::regnamespace, 'pg_namespace')", (schema,)
            ).fetchone()
            if _exists(connection, schema)
            else None
        )
        if done and done[0] == MARK:
            log(f"reusing {schema}")
            return schema
        log(f"making {schema} ({people:,} people)")
        started = time.monotonic()
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.execute(f'CREATE SCHEMA "{schema}"')
        connection.execute(
            f'CREATE TABLE "{schema}".people (id VARCHAR(36) PRIMARY KEY, '
            "display_name VARCHAR(200), mail VARCHAR(200), upn VARCHAR(200))"
        )
        with (
            connection.cursor() as cursor,
            cursor.copy(f'COPY "{schema}".people FROM STDIN') as copy,
        ):
            for index in range(people):
                copy.write_row(person(index))
        connection.execute(f'SET search_path TO "{schema}"')
        for statement in INDEXES:
            connection.execute(statement)
        connection.execute("ANALYZE people")
        connection.execute(f"COMMENT ON SCHEMA \"{schema}\" IS '{MARK}'")
        log(f"{schema} made in {time.monotonic() - started:.0f} s")
    return schema


def _exists(connection: psycopg.Connection, schema: str) -> bool:
    row = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def authorization(data_dir: Path) -> str:
    auth = AuthConfig()
    token = issue_token(
        signing_key(data_dir),
        issuer=auth.issuer,
        audience=auth.audience,
        permissions=[READ_USERS, EXPORT],  # EXPORT: Fleet.start polls the operations
        lifetime=86400,
        subject="bench",
    )
    return f"Bearer {token}"


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def queries(rng: random.Random, people: int) -> dict[str, callable]:  # type: ignore[valid-type]
    """Each query kind: a function of a random person's index -> the path to request."""

    def users(query: str) -> str:
        return "/v1.0/users?" + query

    return {
        # The floor: a request the service answers without the directory (nor a token).
        "floor: GET /healthz": lambda i: "/healthz",
        # A second floor: a route that, as /users, runs its query on a thread of the pool
        # (the operation store's list, here empty).
        "floor: GET /dataPolicyOperations?$top=1": lambda i: "/v1.0/dataPolicyOperations?$top=1",
        "mail eq": lambda i: users("$filter=" + quote(f"mail eq {literal(person(i)[2].upper())}")),
        "userPrincipalName eq": lambda i: users(
            "$filter=" + quote(f"userPrincipalName eq {literal(person(i)[3])}")
        ),
        "GET /users/{upn}": lambda i: "/v1.0/users/" + quote(person(i)[3], safe="@"),
        "GET /users/{id}": lambda i: "/v1.0/users/" + person(i)[0],
        "mail in (3)": lambda i: users(
            "$filter="
            + quote(
                "mail in (" + ",".join(literal(person((i + k) % people)[2]) for k in range(3)) + ")"
            )
        ),
        "startswith(displayName) top 10": lambda i: users(
            "$top=10&$filter=" + quote(f"startswith(displayName, {literal(person(i)[1])})")
        ),
        "orderby displayName top 10": lambda i: users("$top=10&$orderby=displayName"),
        "first page (100 by id)": lambda i: users(""),
    }


def measure(port: int, header: str, paths: list[str]) -> list[float]:
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    times = []
    try:
        for path in paths:
            started = time.perf_counter()
            status, _, body = http_get(port, path, header, connection)
            times.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise SystemExit(f"{path}: {status} {body[:300]!r}")
    finally:
        connection.close()
    return times


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2000, help="per query kind")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    schema = ensure_directory(args.url, args.people)
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RESULTS / f"directory-{stamp}"
    run_dir.mkdir(parents=True)
    data_dir = Path(tempfile.mkdtemp(prefix="directory-bench-", dir=run_dir))
    sqlalchemy_url = args.url.replace("postgresql://", "postgresql+psycopg://", 1)
    config = run_dir / "datapolicy.toml"
    config.write_text(
        "[directory]\n"
        f'url = "{sqlalchemy_url}?options=-csearch_path%3D{schema}"\n'
        'table = "people"\nid_column = "id"\ndisplay_name_column = "display_name"\n'
        'mail_column = "mail"\nuser_principal_name_column = "upn"\n'
    )
    header = authorization(data_dir)
    port = free_port()
    fleet = Fleet(run_dir, "0" if pin else None)
    try:
        fleet.start(
            "datapolicy",
            [
                *_datapolicy_command(),
                "serve",
                "--workers",
                "0",
                "--data-dir",
                str(data_dir),
                "--config",
                str(config),
                "--host",
                HOST,
                "--port",
                str(port),
            ],
            port,
            header,
        )
        rng = random.Random(SEED)
        results: dict[str, dict[str, float]] = {}
        for name, path_of in queries(rng, args.people).items():
            picks = [rng.randrange(args.people) for _ in range(args.requests)]
            measure(port, header, [path_of(i) for i in picks[: max(20, args.requests // 10)]])
            times = measure(port, header, [path_of(i) for i in picks])
            results[name] = {
                "p50_ms": round(statistics.median(times), 3),
                "p90_ms": round(percentile(times, 90), 3),
                "p99_ms": round(percentile(times, 99), 3),
            }
            log(
                f"{name:34} p50 {results[name]['p50_ms']:7.2f} ms   "
                f"p90 {results[name]['p90_ms']:7.2f} ms   p99 {results[name]['p99_ms']:7.2f} ms"
            )
    finally:
        fleet.stop()
    with psycopg.connect(args.url, autocommit=True) as connection:
        connection.execute(f'SET search_path TO "{schema}"')
        lookup = (
            'SELECT id FROM people WHERE lower(mail COLLATE "C") = %s '
            'ORDER BY id COLLATE "C" NULLS FIRST LIMIT 101'
        )
        mail = person(1)[2].lower()
        plan = [row[0] for row in connection.execute("EXPLAIN ANALYZE " + lookup, (mail,))]
        # The database's own floor: one round trip from this machine's Python.
        trips = []
        for _ in range(300):
            started = time.perf_counter()
            connection.execute("SELECT 1").fetchall()
            trips.append((time.perf_counter() - started) * 1000)
    results["floor: SELECT 1 round trip (psycopg)"] = {"p50_ms": round(statistics.median(trips), 3)}
    log("plan of the mail lookup: " + " / ".join(line.strip() for line in plan))
    log(f"a database round trip (SELECT 1): p50 {statistics.median(trips):.2f} ms")
    p50 = results["mail eq"]["p50_ms"]
    verdict = "PASS" if p50 < TARGET_MS else "FAIL"
    floor = results["floor: GET /healthz"]["p50_ms"]
    log(
        f"mail eq on {args.people:,} people: p50 {p50:.2f} ms (target < {TARGET_MS} ms): "
        f"{verdict}; the floor's p50 in the same run: {floor:.2f} ms"
    )
    report = {
        "people": args.people,
        "requests": args.requests,
        "loadavg": os.getloadavg(),
        "results": results,
        "plan": plan,
        "target_ms": TARGET_MS,
        "verdict": verdict,
    }
    out = RESULTS / f"directory-{stamp}.json"
    out.write_text(json.dumps(report, indent=2))
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
