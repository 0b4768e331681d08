"""What a `datapolicy worker` answers on its `--metrics-port` (web/server_root/worker_port.py):
`/healthz` follows its export threads (200 while all run, 503 naming one that has ended, 200
again once it stops on purpose), and every other path is its metrics page."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from databases import store_database
from datapolicy.demo import prepare_demo
from datapolicy.engine import build_context
from datapolicy.engine.worker import Worker
from datapolicy.store.queue import OperationQueue
from datapolicy.web.server_root.worker_port import WorkerPort
from engine.test_worker import FAST


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    """Two export threads on an idle SQLite store."""
    with store_database("sqlite", tmp_path / "store") as database:
        context = build_context(prepare_demo(tmp_path), tmp_path)
        worker = Worker(OperationQueue(database), context, FAST.model_copy(update={"workers": 2}))
        yield worker
        worker.stop(grace=0)
        context.close()


def serve_port(worker: Worker) -> str:
    port = free_port()
    WorkerPort("127.0.0.1", port).serve(worker.ended_threads)
    return f"http://127.0.0.1:{port}"


# The thread made to end below ends with an exception, which pytest reports unless told not to.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_healthz_follows_the_export_threads(worker: Worker, monkeypatch: pytest.MonkeyPatch):
    worker.start()
    base = serve_port(worker)
    alive = httpx.get(f"{base}/healthz", timeout=5)
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})

    # One thread's loop meets what it cannot catch (as an interpreter shutdown would): it ends.
    ended = threading.Event()
    run_once = worker.run_once

    def end_one_thread(owner: str | None = None) -> bool:
        if not ended.is_set():
            ended.set()
            raise SystemExit  # not caught by the thread's loop
        return run_once(owner)

    monkeypatch.setattr(worker, "run_once", end_one_thread)
    assert ended.wait(5)
    for thread in worker._threads:
        thread.join(0.05)
    dead = httpx.get(f"{base}/healthz", timeout=5)
    assert dead.status_code == 503, dead.content
    error = dead.json()["error"]
    assert error["code"] == "serviceNotAvailable"
    assert len([name for name in ("export-0", "export-1") if name in error["message"]]) == 1

    worker.stop(grace=0)  # threads that end because the worker stops are not a failure
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200


def test_every_other_path_is_the_metrics_page(worker: Worker):
    base = serve_port(worker)
    for path in ("/metrics", "/"):
        page = httpx.get(f"{base}{path}", timeout=5)
        assert page.status_code == 200
        assert "datapolicy_exports_total" in page.text


def test_a_port_in_use_fails_when_the_port_is_made():
    """`datapolicy worker` makes its port before it starts a thread, so this fails its start."""
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        with pytest.raises(OSError, match="in use"):
            WorkerPort("127.0.0.1", occupant.getsockname()[1])
