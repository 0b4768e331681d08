"""Exports that go wrong, end to end: real `datapolicy serve` and `datapolicy worker` processes,
real files, a real SQLite store, and signals, driven over HTTP as clients drive them.

Each test runs the API alone (`serve --workers 0`; in the test process, tests/inprocess.py,
unless the test reads its log: then as a process) and its export workers as separate
`datapolicy worker` processes on the same data directory and configuration, so a test can kill,
stop and restart workers while the API keeps answering. A test that signals, kills or cancels
an export in progress starts its worker paused (tests/steppedworker.py): each export it runs
waits once its first data is written, until the test lets it go on, or until it is told to stop
as any export in progress is (a hand-back, a cancellation), so the signal surely arrives mid-export
however fast the machine, and the next worker's export takes a moment. One person ("bulky") has
16 MiB of files in four, more than one test's file size limit; another ("slim") has one small
file.
The store is read directly (read-only) only for what the API does not show: attempts, leases and
whether a deleted operation's row has been purged.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from conftest import (
    ProcessService,
    Service,
    service_database,
    start_app,
    start_service,
    stepped_command,
    stop_process,
    store_args,
)
from datapolicy.engine.verify import verify_package
from datapolicy.store.tables import operations
from datapolicy.testing.server import bound_port

pytestmark = [
    pytest.mark.operation_store,  # worker and API processes, signalled and killed
    pytest.mark.slow,
    pytest.mark.e2e,
    pytest.mark.spread,  # each test deploys its own: they need not share a process
]

T = TypeVar("T")

BULKY = "bulky"  # a person with several files
SLIM = "slim"  # a person with one small file
BULKY_FILES = 4
BULKY_FILE_MIB = 4  # random bytes: the package is as large as the files

LEASE_S = 2.0
HEARTBEAT_S = 0.5
POLL_S = 0.2
POLL_INTERVAL_S = 0.05  # how often the tests poll the API and the files
START_TIMEOUT_S = 20  # a worker process starting and its export getting under way
EXPORT_TIMEOUT_S = 60  # one whole export of the bulky person, with room for a slow machine
PASSWORD = "Sup3r-Secret-Pw0rd"
LONG_LEASE_S = 120.0  # far longer than a test waits: a takeover before it is a hand-back
SHORT_GRACE_S = 0.5  # shorter than a paused export: it ends only once it is let go on


# --- the deployment under test ------------------------------------------------------------------


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The file source's directory: `<people>/<userId>/...`; removed afterwards."""
    root = tmp_path_factory.mktemp("people")
    bulky = root / BULKY
    bulky.mkdir()
    for index in range(BULKY_FILES):
        (bulky / f"scan-{index}.bin").write_bytes(os.urandom(BULKY_FILE_MIB * 1024 * 1024))
    slim = root / SLIM
    slim.mkdir()
    (slim / "note.txt").write_text("a short note\n" * 100)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class Deployment:
    """An API (in the test process, or a process of its own) and any number of worker
    processes on one data directory."""

    root: Path
    config: Path
    data_dir: Path
    exports: Path  # the configured [storage.local] root
    api: Service
    http: httpx.Client
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    observed: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    # --- processes ---

    def start_worker(
        self, *, paused: bool = False, file_size_limit: int | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `datapolicy worker`. `paused`: each export it runs waits once its first data
        is written (`steps(number)`, `release(number)`). With `file_size_limit`, no file it
        writes may grow past that many bytes (RLIMIT_FSIZE: writes beyond it fail with EFBIG,
        as on a full disk)."""
        arguments = [
            "worker",
            "--data-dir",
            str(self.data_dir),
            "--config",
            str(self.config),
            *store_args(self.data_dir),
        ]
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if paused:
            steps = self.steps(len(self.workers) + 1)
            steps.mkdir()
            command, environment = stepped_command(steps, *arguments, pause="1")
        elif file_size_limit is None:
            command = [sys.executable, "-m", "datapolicy", *arguments]
        else:
            command = [
                sys.executable,
                "-c",
                "import resource, sys\n"
                f"limit = {file_size_limit}\n"
                "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
                "from datapolicy.cli import main\n"
                "main(sys.argv[1:], prog_name='datapolicy')\n",
                *arguments,
            ]
        log = self.root / f"worker-{len(self.workers) + 1}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        self.workers.append(process)
        return process

    def steps(self, number: int) -> Path:
        """The directory through which the test steers paused worker `number`
        (tests/steppedworker.py)."""
        return self.root / f"steps-{number}"

    def release(self, number: int) -> None:
        """Let paused worker `number`'s exports go on, and its later ones run without a pause."""
        (self.steps(number) / "go").touch()

    def stop(self) -> None:
        for process in self.workers:
            stop_process(process)
        self.http.close()
        self.api.stop()

    def worker_log(self, number: int) -> str:
        return (self.root / f"worker-{number}.log").read_text(errors="replace")

    def logs(self, tail: int | None = 3000) -> str:
        """Every process's log (the last `tail` characters of each, or all of it); an API in
        the test process logs to the test's captured output instead."""
        start = None if tail is None else -tail
        parts = []
        if isinstance(self.api, ProcessService):
            parts.append(f"--- serve ---\n{self.api.log.read_text(errors='replace')[start:]}")
        parts += [
            f"--- worker {n} ---\n{self.worker_log(n)[start:]}"
            for n in range(1, len(self.workers) + 1)
        ]
        return "\n".join(parts)

    # --- the API ---

    def start_export(self, user_id: str, location: Path) -> str:
        response = self.http.post(
            "/dataPolicyOperations", json={"userId": user_id, "storageLocation": str(location)}
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def operation(self, operation_id: str) -> dict[str, Any]:
        """GET the operation, remembering the status and progress seen."""
        response = self.http.get(f"/dataPolicyOperations/{operation_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        self.observed.setdefault(operation_id, []).append((body["status"], body["progress"]))
        return body

    def wait_for_status(
        self, operation_id: str, statuses: tuple[str, ...], timeout: float
    ) -> dict[str, Any]:
        return self.wait(
            f"operation {operation_id} to be {' or '.join(statuses)}",
            lambda: (body := self.operation(operation_id))["status"] in statuses and body,
            timeout,
        )

    def wait_until_exporting(
        self, operation_id: str, location: Path, paused_in: Path | None = None
    ) -> dict[str, Any]:
        """Until the operation is running with progress recorded and a partial file exists
        (and, with `paused_in`, the steps directory of a paused process, the export waits
        there)."""
        return self.wait(
            f"operation {operation_id} to be running with progress > 0 and a partial file",
            lambda: (
                (paused_in is None or (paused_in / f"paused-{operation_id}").exists())
                and (body := self.operation(operation_id))["status"] == "running"
                and body["progress"] > 0
                and partials_of(location, operation_id)
                and body
            ),
            START_TIMEOUT_S,
        )

    # --- the store, read-only ---

    def row(self, operation_id: str) -> dict[str, Any] | None:
        """The operation's row in the store (None once purged), on SQLite or PostgreSQL."""
        with service_database(self.data_dir) as database:
            found = database.fetch_all(operations.select().where(operations.c.id == operation_id))
        return dict(zip(operations.c.keys(), found[0], strict=True)) if found else None

    # --- waiting ---

    def wait(self, what: str, condition: Callable[[], T], timeout: float) -> T:
        """Poll `condition` until it returns something true, or fail after `timeout` seconds
        showing the processes' logs."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}\n{self.logs()}")
            time.sleep(POLL_INTERVAL_S)


@pytest.fixture
def deploy(tmp_path: Path, people: Path) -> Iterator[Callable[..., Deployment]]:
    """Start the API (no export threads) with the test's configuration: a file source over
    `people` unless `sources` (TOML) replaces it, and [engine] settings as keywords; in the test
    process unless `api_process` (a `datapolicy serve` process, whose log `logs` shows). The
    test starts workers itself. Every process is stopped and every package removed
    afterwards."""
    started: list[Deployment] = []

    def start(
        *, sources: str | None = None, api_process: bool = False, **engine: float
    ) -> Deployment:
        assert not started, "one deployment per test: they would share tmp_path"
        settings = {
            "workers": 1,
            "lease_seconds": LEASE_S,
            "heartbeat_seconds": HEARTBEAT_S,
            "poll_seconds": POLL_S,
            "max_attempts": 3,
            "retry_backoff_seconds": 0.2,
            **engine,
        }
        exports = tmp_path / "exports"
        exports.mkdir()
        if sources is None:
            sources = (
                "[[sources.files]]\n"
                "name = 'documents'\n"
                f"path = {_toml(str(people) + '/{userId}')}\n"
            )
        config = tmp_path / "datapolicy.toml"
        config.write_text(
            "[engine]\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
            + f"\n{sources}\n[storage.local]\nroots = [{_toml(exports)}]\n"
        )
        data_dir = tmp_path / "data"
        api = (start_service if api_process else start_app)(
            data_dir, "--config", str(config), "--workers", "0"
        )
        deployment = Deployment(
            root=tmp_path,
            config=config,
            data_dir=data_dir,
            exports=exports,
            api=api,
            http=api.client(timeout=10),
        )
        started.append(deployment)
        return deployment

    yield start
    for deployment in started:
        deployment.stop()
        shutil.rmtree(deployment.exports, ignore_errors=True)


def _toml(value: object) -> str:
    return json.dumps(str(value))  # a TOML basic string is a JSON string


# --- checks ---------------------------------------------------------------------------------------


def assert_monotonic(observed: list[tuple[str, float]]) -> None:
    """Progress never went down, nor status back, in what the polling saw."""
    progress = [value for _, value in observed]
    assert progress == sorted(progress), f"progress went down: {observed}"
    order = {"notStarted": 0, "running": 1, "complete": 2, "failed": 2}
    statuses = [order[status] for status, _ in observed]
    assert statuses == sorted(statuses), f"status went back: {observed}"


def assert_whole_package(package: Path, operation_id: str, people: Path, user_id: str) -> None:
    """The package verifies (library and CLI) and holds every one of the person's files."""
    assert verify_package(package) == []
    verified = subprocess.run(
        [sys.executable, "-m", "datapolicy", "verify", str(package)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (verified.returncode, verified.stdout.strip()) == (0, f"{package}: OK"), verified.stderr
    with zipfile.ZipFile(package) as archive:
        manifest = orjson.loads(archive.read("manifest.json"))
    assert manifest["operationId"] == operation_id
    sizes = {
        entry["path"]: entry["size"]
        for entry in manifest["files"]
        if entry["path"].startswith("files/")
    }
    assert sizes == {
        f"files/documents/{path.name}": path.stat().st_size for path in (people / user_id).iterdir()
    }


def names_in(directory: Path) -> list[str]:
    """Every entry of the directory, hidden ones included."""
    return sorted(path.name for path in directory.iterdir())


def partials_of(location: Path, operation_id: str) -> list[Path]:
    """The partial files of the operation's attempts (one per attempt: `.<id>.<nonce>...`)."""
    return sorted(location.glob(f".{operation_id}.*.zip.partial"))


def partials_under(*roots: Path) -> list[Path]:
    return [path for root in roots for path in root.rglob("*.partial")]


# --- the tests ------------------------------------------------------------------------------------


def test_a_killed_worker_s_export_is_finished_by_the_next_worker(deploy, people):
    """SIGKILL of a worker mid-export: its lease expires, another worker claims the operation
    (attempt 2), writes the package again in a partial file of its own and publishes it.
    Clients see progress that never goes down, one complete operation and exactly one package,
    whole and verifying; the dead worker's partial file is swept once it is older than the
    lease. A worker's death is not the export's failure: with max_attempts = 1 the export still
    completes (it is counted as a worker loss)."""
    deployment = deploy(max_attempts=1)
    location = deployment.exports / "after-a-kill"
    first = deployment.start_worker(paused=True)
    operation_id = deployment.start_export(BULKY, location)
    deployment.wait_until_exporting(operation_id, location, deployment.steps(1))
    row = deployment.row(operation_id)
    assert row is not None
    assert row["attempts"] == 1
    assert f":{first.pid}:" in row["lease_owner"]  # worker names are host:pid:...

    first.kill()
    assert first.wait(timeout=10) == -signal.SIGKILL
    (left,) = partials_of(location, operation_id)  # what the dead worker left
    assert deployment.operation(operation_id)["status"] == "running"

    deployment.start_worker()
    done = deployment.wait_for_status(
        operation_id, ("complete", "failed"), LEASE_S + EXPORT_TIMEOUT_S
    )
    assert done["status"] == "complete", done
    assert done["progress"] == 100.0
    assert done["error"] is None
    assert_monotonic(deployment.observed[operation_id])
    deployment.wait(
        f"the dead attempt's {left.name} to be swept",
        lambda: names_in(location) == [f"{operation_id}.zip"],
        LEASE_S * 4,
    )
    assert_whole_package(location / f"{operation_id}.zip", operation_id, people, BULKY)
    row = deployment.row(operation_id)
    assert row is not None
    assert (row["attempts"], row["worker_losses"], row["lease_owner"]) == (2, 1, None)


def test_deleting_a_running_export_cancels_it_and_leaves_nothing(deploy, people):
    """DELETE of a running export: 204, then 404 at once; the worker notices at its next
    heartbeat, stops, removes its partial file and purges the row, all within a few
    heartbeats, and then goes on serving other exports."""
    deployment = deploy()
    location = deployment.exports / "cancelled"
    worker = deployment.start_worker(paused=True)
    operation_id = deployment.start_export(BULKY, location)
    deployment.wait_until_exporting(operation_id, location, deployment.steps(1))

    deleted = deployment.http.delete(f"/dataPolicyOperations/{operation_id}")
    assert deleted.status_code == 204, deleted.text
    requested = time.monotonic()
    gone = deployment.http.get(f"/dataPolicyOperations/{operation_id}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "ResourceNotFound"
    deployment.wait(
        "the cancelled export's partial file and row to go",
        lambda: not names_in(location) and deployment.row(operation_id) is None,
        10,
    )
    stopped_after = time.monotonic() - requested
    assert stopped_after < 6 * HEARTBEAT_S, f"the worker took {stopped_after:.1f}s to stop"
    assert names_in(location) == []
    assert deployment.http.get(f"/dataPolicyOperations/{operation_id}").status_code == 404

    assert worker.poll() is None
    deployment.release(1)
    later = deployment.start_export(SLIM, location)
    done = deployment.wait_for_status(later, ("complete", "failed"), EXPORT_TIMEOUT_S)
    assert done["status"] == "complete", done
    assert names_in(location) == [f"{later}.zip"]
    assert_whole_package(location / f"{later}.zip", later, people, SLIM)
    assert f"export {operation_id} cancelled" in deployment.worker_log(1)


def test_deleting_a_complete_export_removes_its_package(deploy):
    """DELETE of a complete export: 204 and 404 at once; a worker then deletes the published
    package and purges the row."""
    deployment = deploy()
    location = deployment.exports / "delivered"
    deployment.start_worker()
    operation_id = deployment.start_export(SLIM, location)
    done = deployment.wait_for_status(operation_id, ("complete", "failed"), EXPORT_TIMEOUT_S)
    assert done["status"] == "complete", done
    package = location / f"{operation_id}.zip"
    assert package.is_file()

    deleted = deployment.http.delete(f"/dataPolicyOperations/{operation_id}")
    assert deleted.status_code == 204, deleted.text
    assert deployment.http.get(f"/dataPolicyOperations/{operation_id}").status_code == 404
    deployment.wait(
        "the deleted operation's package and row to go",
        lambda: not package.exists() and deployment.row(operation_id) is None,
        10,
    )
    assert names_in(location) == []


def test_a_destination_made_unusable_after_the_request_fails_naming_it(deploy, tmp_path):
    """Locations accepted at request time that cannot be written when the worker comes to them
    fail the operation, with an error naming the problem and the place, and leave nothing
    partial anywhere:

    - the destination directory replaced by a regular file: StorageLocationInvalid at once;
    - the destination replaced by a symlink to a directory outside the allowed roots:
      StorageLocationInvalid at once, and nothing is written through the link;
    - the package's final name taken by a directory, so publication itself is refused:
      storageError after every attempt, naming the file that could not be published.
    """
    deployment = deploy(max_attempts=2)
    now_a_file = deployment.exports / "now-a-file"
    now_a_link = deployment.exports / "now-a-link"
    name_taken = deployment.exports / "name-taken"
    outside = tmp_path / "outside"
    outside.mkdir()
    file_op = deployment.start_export(SLIM, now_a_file)
    link_op = deployment.start_export(SLIM, now_a_link)
    taken_op = deployment.start_export(SLIM, name_taken)

    now_a_file.rmdir()
    now_a_file.write_text("not a directory\n")
    now_a_link.rmdir()
    now_a_link.symlink_to(outside, target_is_directory=True)
    (name_taken / f"{taken_op}.zip").mkdir()
    (name_taken / f"{taken_op}.zip" / "occupied").write_text("someone else's\n")
    deployment.start_worker()

    failed = {
        operation_id: deployment.wait_for_status(operation_id, ("complete", "failed"), 30)
        for operation_id in (file_op, link_op, taken_op)
    }
    assert {body["status"] for body in failed.values()} == {"failed"}, failed
    assert failed[file_op]["error"] == {
        "code": "StorageLocationInvalid",
        "message": f"The storage location '{now_a_file}' exists and is not a directory.",
    }
    assert failed[link_op]["error"] == {
        "code": "StorageLocationInvalid",
        "message": f"The storage location '{now_a_link}' is not inside an allowed root.",
    }
    assert failed[taken_op]["error"]["code"] == "storageError"
    message = failed[taken_op]["error"]["message"]
    assert f"cannot publish {name_taken / taken_op}.zip: Is a directory" in message
    assert "gave up after 2 attempts" in message
    assert deployment.row(file_op)["attempts"] == 1  # no retry can fix a location
    assert deployment.row(link_op)["attempts"] == 1

    assert now_a_file.read_text() == "not a directory\n"
    assert names_in(outside) == []
    assert names_in(name_taken) == [f"{taken_op}.zip"]
    assert names_in(name_taken / f"{taken_op}.zip") == ["occupied"]
    assert partials_under(deployment.exports, outside) == []


def test_a_storage_without_room_fails_at_once_naming_the_location(deploy):
    """A destination that stops taking data part-way through (a full disk or a quota; here a
    file size limit on the worker process, so writes fail with EFBIG) fails the operation at
    once, not after retries that would be refused the same way, with a storageError naming the
    storage location (not a hidden file of ours) and why, and the partial file is removed even
    though its last buffered bytes cannot be written either."""
    deployment = deploy(max_attempts=2)
    location = deployment.exports / "too-small"
    deployment.start_worker(file_size_limit=8 * 1024 * 1024)
    operation_id = deployment.start_export(BULKY, location)
    failed = deployment.wait_for_status(operation_id, ("complete", "failed"), EXPORT_TIMEOUT_S)
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] == "storageError", (failed["error"], names_in(location))
    assert (
        failed["error"]["message"] == f"the storage location '{location}' is full (File too large)"
    )
    assert names_in(location) == []
    assert deployment.row(operation_id)["attempts"] == 1
    assert " ERROR " not in deployment.worker_log(1)  # the partial file was discarded cleanly


def test_an_unreachable_sql_source_is_retried_then_fails_without_its_password(deploy):
    """A SQL source whose server cannot be reached (a closed loopback port) fails every
    attempt; after max_attempts the operation is failed with code sourceError and a message
    naming the source and its server but never the password in its URL (nor do the logs: the
    worker's and the API process's, which reads the same configuration)."""
    deployment = deploy(
        api_process=True,
        max_attempts=2,
        retry_backoff_seconds=0.1,
        sources=(
            "[[sources.sql]]\n"
            "name = 'crm'\n"
            f"url = 'postgresql+psycopg://exporter:{PASSWORD}@127.0.0.1:1/crm'\n"
            "[[sources.sql.tables]]\n"
            "table = 'contacts'\n"
            "user_key = 'owner'\n"
        ),
    )
    location = deployment.exports / "never-written"
    deployment.start_worker()
    operation_id = deployment.start_export("someone", location)
    failed = deployment.wait_for_status(operation_id, ("complete", "failed"), 30)
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] == "sourceError"
    message = failed["error"]["message"]
    assert message.startswith("source 'crm' (postgresql+psycopg://exporter:***@127.0.0.1:1/crm)")
    assert "gave up after 2 attempts" in message
    assert PASSWORD not in deployment.http.get(f"/dataPolicyOperations/{operation_id}").text
    assert deployment.row(operation_id)["attempts"] == 2
    assert names_in(location) == []
    assert PASSWORD not in deployment.logs(tail=None)


def test_sigterm_hands_the_export_back_and_the_next_worker_completes_it(deploy, people):
    """SIGTERM to a worker mid-export, with a grace period too short for it: once the grace
    period is over the worker stops the export, removes its partial file, gives the operation
    back (lease released, the attempt not counted) and exits 0; the next worker claims it at
    once (the lease is long: it does not wait for it to expire) and completes it as attempt 1."""
    deployment = deploy(lease_seconds=LONG_LEASE_S, shutdown_grace_seconds=SHORT_GRACE_S)
    location = deployment.exports / "handed-back"
    first = deployment.start_worker(paused=True)
    operation_id = deployment.start_export(BULKY, location)
    deployment.wait_until_exporting(operation_id, location, deployment.steps(1))

    signalled = time.monotonic()
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=SHORT_GRACE_S + 10) == 0, deployment.logs()
    stopped_after = time.monotonic() - signalled
    assert SHORT_GRACE_S <= stopped_after < SHORT_GRACE_S + 5, f"stopped after {stopped_after:.1f}s"
    row = deployment.row(operation_id)
    assert row is not None
    assert (row["status"], row["lease_owner"], row["attempts"]) == ("running", None, 0)
    assert names_in(location) == []
    log = deployment.worker_log(1)
    assert "datapolicy worker stopped" in log
    assert " ERROR " not in log

    deployment.start_worker()
    deployment.wait_until_exporting(operation_id, location)
    assert time.monotonic() - signalled < LONG_LEASE_S / 2  # taken over, not left to expire
    done = deployment.wait_for_status(operation_id, ("complete", "failed"), EXPORT_TIMEOUT_S)
    assert done["status"] == "complete", done
    assert done["error"] is None
    assert_monotonic(deployment.observed[operation_id])
    assert names_in(location) == [f"{operation_id}.zip"]
    assert_whole_package(location / f"{operation_id}.zip", operation_id, people, BULKY)
    assert deployment.row(operation_id)["attempts"] == 1


def test_sigterm_lets_an_export_finish_within_the_grace_period_and_claims_nothing_more(
    deploy, people
):
    """SIGTERM with a grace period long enough: the export in progress (let go on only once the
    worker has stopped claiming) completes and is published, the export queued behind it is
    left for another worker, and the worker exits 0."""
    deployment = deploy(shutdown_grace_seconds=EXPORT_TIMEOUT_S)
    location = deployment.exports / "finished-on-the-way-out"
    first = deployment.start_worker(paused=True)
    running = deployment.start_export(BULKY, location)
    deployment.wait_until_exporting(running, location, deployment.steps(1))
    queued = deployment.start_export(SLIM, location)

    first.send_signal(signal.SIGTERM)
    deployment.wait(
        "the worker to stop claiming",
        lambda: (deployment.steps(1) / "stopped-claiming").exists(),
        10,
    )
    assert deployment.operation(running)["status"] == "running"  # still paused
    deployment.release(1)
    assert first.wait(timeout=EXPORT_TIMEOUT_S + 10) == 0, deployment.logs()
    assert deployment.operation(running)["status"] == "complete"
    assert_whole_package(location / f"{running}.zip", running, people, BULKY)
    assert deployment.operation(queued)["status"] == "notStarted"
    assert names_in(location) == [f"{running}.zip"]
    row = deployment.row(running)
    assert row is not None
    assert (row["attempts"], row["lease_owner"]) == (1, None)
    assert "datapolicy worker stopped" in deployment.worker_log(1)


def test_serve_stops_on_sigterm_handing_back_its_in_process_export(deploy, people):
    """`datapolicy serve` with export threads: SIGTERM stops the API and, with a long grace
    period, a second signal makes the export in progress be handed back at once. The process
    exits 0, leaves no partial file, and a worker then completes the export as attempt 1."""
    deployment = deploy(lease_seconds=LONG_LEASE_S, shutdown_grace_seconds=EXPORT_TIMEOUT_S)
    location = deployment.exports / "from-serve"
    log = deployment.root / "serve-with-workers.log"
    steps = deployment.root / "steps-serve"  # its export waits, paused, until handed back
    steps.mkdir()
    command, environment = stepped_command(
        steps,
        *("serve", "--port", "0"),
        *("--data-dir", str(deployment.data_dir), "--config", str(deployment.config)),
        *("--shutdown-drain-seconds", "0"),  # no load balancer to wait for
        *store_args(deployment.data_dir),
        pause="1",
    )
    with log.open("wb") as output:
        serving = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment
        )
    try:
        operation_id = deployment.start_export(BULKY, location)
        deployment.wait_until_exporting(operation_id, location, steps)
        port = deployment.wait("serve to listen", lambda: bound_port(log), 10)
        serving.send_signal(signal.SIGTERM)
        deployment.wait(  # the API stopped listening; the export is still running
            "serve to stop accepting connections",
            lambda: _refused(f"http://127.0.0.1:{port}/healthz"),
            10,
        )
        assert serving.poll() is None
        signalled = time.monotonic()
        serving.send_signal(signal.SIGINT)  # hurry: hand back now
        assert serving.wait(timeout=10) == 0, log.read_text()
        assert time.monotonic() - signalled < 5
    finally:
        if serving.poll() is None:
            serving.kill()
            serving.wait()
    output = log.read_text()
    assert "datapolicy stopped" in output
    assert "Traceback" not in output
    row = deployment.row(operation_id)
    assert row is not None
    assert (row["status"], row["lease_owner"], row["attempts"]) == ("running", None, 0)
    assert names_in(location) == []

    deployment.start_worker()
    done = deployment.wait_for_status(operation_id, ("complete", "failed"), EXPORT_TIMEOUT_S)
    assert done["status"] == "complete", done
    assert_whole_package(location / f"{operation_id}.zip", operation_id, people, BULKY)
    assert deployment.row(operation_id)["attempts"] == 1


def _refused(url: str) -> bool:
    """Whether the server refuses connections now. A connection reset while the listener
    closes (one already in its backlog) decides nothing: the next try is refused or served."""
    try:
        httpx.get(url, timeout=1)
    except httpx.ConnectError:
        return True
    except (httpx.ReadError, httpx.RemoteProtocolError):
        pass  # not an answer: the next try is refused or served
    return False
