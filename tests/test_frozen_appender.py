"""One process frozen inside an audit append does not stall the deployment (PostgreSQL).

Two `datapolicy serve --workers 0` processes share one PostgreSQL store. One of them
(tests/freezingserve.py) stops itself with SIGSTOP inside an export start's audit append, while
it holds the trail's head `FOR UPDATE`, which every change in every process needs. Meanwhile
clients start exports and poll them by id through the other process: the server ends the frozen
session after `[store] audit_idle_timeout` (2 s), so a start waits that long at most and then
succeeds; none fails, the 95th percentile stays under 3 s, and every export started exists. Then
the frozen process is resumed: its own request gets a clean 503 (its start was rolled back, so
no export is hidden behind it), it serves again, and the chain verifies (`datapolicy audit
verify`).

It runs in the PostgreSQL pass (DATAPOLICY_TEST_STORE=postgresql): on SQLite a frozen writer keeps
the file's write lock until it resumes (docs/security.md), which is what this test would fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import TEST_STORE, Service, start_service, store_args, wait_for
from databases import POSTGRESQL
from datapolicy.testing.server import bound_port, stop_process

pytestmark = [
    pytest.mark.operation_store,  # starts services or workers on the test store
    pytest.mark.e2e,  # a `serve` process frozen with SIGSTOP
    pytest.mark.skipif(TEST_STORE != POSTGRESQL, reason="the PostgreSQL pass runs it"),
    pytest.mark.timeout(180),
]
FREEZING_SERVE = Path(__file__).with_name("freezingserve.py")
FREEZE_USER = "frozen-" + str(uuid.uuid4())
AUDIT_IDLE_S = 2.0  # [store] audit_idle_timeout's default (lock_timeout stays 5)
LOAD_S = 3 * AUDIT_IDLE_S  # the freeze's release window, and as long again after it
CLIENTS = 4
CONFIG = """
[limits]
write_rate = 0
read_rate = 0
"""


@dataclass
class Frozen:
    """The API process that freezes inside the append of FREEZE_USER's start."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stopped(self) -> bool:
        """Whether the process is stopped (SIGSTOP), from /proc."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "T"


@pytest.fixture
def apis(tmp_path: Path) -> Iterator[tuple[Service, Frozen]]:
    data_dir = tmp_path / "data"
    config = tmp_path / "datapolicy.toml"
    config.write_text(CONFIG)
    args = ("--workers", "0", "--config", str(config))
    healthy = start_service(data_dir, *args)  # it makes the signing key the other one uses
    log = tmp_path / "frozen.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, str(FREEZING_SERVE), "serve", "--host", "127.0.0.1"),
                *("--port", "0", "--data-dir", str(data_dir), *args),
                *store_args(data_dir),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "DATAPOLICY_FREEZE_USER": FREEZE_USER,
                "DATAPOLICY_SHUTDOWN_DRAIN_SECONDS": "0",
            },
        )
    try:
        wait_for("the second API", lambda: answers(bound_port(log)), 60, log.read_text)
        yield healthy, Frozen(process, f"http://127.0.0.1:{bound_port(log)}/v1.0", log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
        stop_process(process)
        healthy.stop()


def answers(port: int | None) -> bool:
    if port is None:  # not listening yet
        return False
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Outcome:
    kind: str  # "start" or "poll"
    status: int
    seconds: float
    operation_id: str | None = None


def client_load(service: Service, until: float) -> list[Outcome]:
    """Start an export and poll it by id, over and over, until `until`."""
    outcomes = []
    with service.client(timeout=30) as client:
        while time.monotonic() < until:
            began = time.monotonic()
            started = client.post("/dataPolicyOperations", json={"userId": str(uuid.uuid4())})
            operation_id = started.json().get("id") if started.status_code == 201 else None
            outcomes.append(
                Outcome("start", started.status_code, time.monotonic() - began, operation_id)
            )
            if operation_id is not None:
                began = time.monotonic()
                polled = client.get(f"/dataPolicyOperations/{operation_id}")
                outcomes.append(Outcome("poll", polled.status_code, time.monotonic() - began))
    return outcomes


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def test_a_process_frozen_mid_append_does_not_stall_the_other(apis: tuple[Service, Frozen]):
    healthy, frozen = apis
    headers = healthy.headers
    with ThreadPoolExecutor(1 + CLIENTS) as pool:
        stalled = pool.submit(
            httpx.post,
            f"{frozen.url}/dataPolicyOperations",
            json={"userId": FREEZE_USER},
            headers=headers,
            timeout=120,
        )
        wait_for("the freeze", frozen.stopped, 30, frozen.log.read_text)
        until = time.monotonic() + LOAD_S
        loads = [pool.submit(client_load, healthy, until) for _ in range(CLIENTS)]
        outcomes = [outcome for load in loads for outcome in load.result()]
        assert frozen.stopped()  # frozen throughout

        statuses = {(outcome.kind, outcome.status) for outcome in outcomes}
        assert statuses == {("start", 201), ("poll", 200)}, outcomes
        starts = [outcome.seconds for outcome in outcomes if outcome.kind == "start"]
        polls = [outcome.seconds for outcome in outcomes if outcome.kind == "poll"]
        print(
            f"{len(starts)} starts (p95 {p95(starts):.2f} s, max {max(starts):.2f} s), "
            f"{len(polls)} polls (p95 {p95(polls):.2f} s) while one process was frozen"
        )
        assert max(starts) > AUDIT_IDLE_S / 4  # the first starts did wait for the frozen head
        assert p95(starts) < 3
        assert p95(polls) < 3
        assert max(starts) < AUDIT_IDLE_S + 3  # released by the server, not by a lock timeout

        frozen.process.send_signal(signal.SIGCONT)
        answer = stalled.result(timeout=60)
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0
    assert answer.json()["error"]["code"] == "serviceNotAvailable"

    with httpx.Client(base_url=frozen.url, headers=headers, timeout=30) as client:
        wait_for(
            "the resumed API to start exports", lambda: resumed(client), 30, frozen.log.read_text
        )
        for outcome in outcomes:
            if outcome.operation_id is not None:
                assert (
                    client.get(f"/dataPolicyOperations/{outcome.operation_id}").status_code == 200
                )
        hidden = client.get(
            "/dataPolicyOperations/$count", params={"$filter": f"userId eq '{FREEZE_USER}'"}
        )
        assert hidden.text == "0"  # the refused start left no export behind

    verified = subprocess.run(
        [
            *(sys.executable, "-m", "datapolicy", "audit", "verify"),
            *("--data-dir", str(healthy.data_dir), *store_args(healthy.data_dir)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("OK, ")
    assert "Traceback" not in frozen.log.read_text()


def resumed(client: httpx.Client) -> bool:
    return (
        client.post("/dataPolicyOperations", json={"userId": str(uuid.uuid4())}).status_code == 201
    )
