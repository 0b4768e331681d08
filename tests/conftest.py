"""Shared fixtures: the service in the test process, or a real `datapolicy serve` process on a
free loopback port.

Tests drive the service over HTTP exactly as clients do, with tokens signed by the service's
own key in its data directory (`token_for`, `Service.headers`). The HTTP contract tests run it
in process (`start_app`, tests/inprocess.py): the app `serve` runs, without a process or a
port. Tests that need a process (signals, logs, a port for the CLI, the Graph SDK or a browser,
several processes on one store) start one (`start_service`) and are marked `e2e`. One service
of each kind is shared by the session; tests keep out of each other's way by creating
operations for a user id of their own (`user_id` fixture) and filtering on it. Tests that need
an empty store start their own.

`DATAPOLICY_TEST_STORE=postgresql` runs every service (and every `datapolicy worker` a test
starts with `store_args`) on PostgreSQL: a scratch schema per data directory, passed as
`--database` (tests/databases.py). The default is SQLite in the data directory.

That pass runs only the tests whose outcome can depend on the test store (`on_test_store`):
those that use a service fixture of this file, and those marked `operation_store` (a module
whose tests or fixtures start services or workers themselves). The others would run exactly as
in the SQLite pass; they are deselected, counted in the summary. The selection fails safe: a
test that reaches the test store (`store_args`, `service_database`, `current_store_url`) without
being selected fails, in every pass, naming the mark it needs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from databases import STORE_KINDS, close_session, store_url
from datapolicy.auth.keys import signing_key
from datapolicy.auth.permissions import PERMISSIONS
from datapolicy.auth.tokens import issue_token
from datapolicy.config import AuthConfig
from datapolicy.server import RunningService
from datapolicy.settings import DATABASE_FILE
from datapolicy.store import Database, open_database
from datapolicy.testing.server import start_serve, stop_process
from inprocess import ORIGIN, PortalTransport, serve_in_process

# Fixtures defined beside the helpers they use: `s3`/`own_s3` (SeaweedFS), `store_kind`/
# `database` (the operation store on SQLite and PostgreSQL) and `namespace` (a scratch namespace
# of each source database); the order pytest-xdist hands the groups out in and
# `--record-durations` (longest_first).
pytest_plugins = ("s3server", "databases", "longest_first")

T = TypeVar("T")
TEST_STORE = os.environ.get("DATAPOLICY_TEST_STORE", "").strip().lower() or "sqlite"
if TEST_STORE not in STORE_KINDS:
    raise pytest.UsageError(f"DATAPOLICY_TEST_STORE must be one of {', '.join(STORE_KINDS)}")
TOKEN_LIFETIME_S = 86400  # longer than any test session
# The fixtures below that start a service on the test store; a test using any of them (or
# marked `operation_store`) is on the test store.
STORE_FIXTURES = frozenset({"service", "demo_service", "service_process", "demo_process"})
STORE_MARK = "operation_store"
_running: pytest.Item | None = None  # the test running now, in this process


def on_test_store(item: pytest.Item) -> bool:
    """Whether the test's outcome can depend on the test store (DATAPOLICY_TEST_STORE), so the
    PostgreSQL pass runs it."""
    fixtures = getattr(item, "fixturenames", ())
    return item.get_closest_marker(STORE_MARK) is not None or not STORE_FIXTURES.isdisjoint(
        fixtures
    )


def _reached_the_test_store(how: str) -> None:
    """Fail the running test if it reaches the test store while the PostgreSQL pass would leave
    it out: the selection must never silently drop a test that starts a service."""
    if _running is not None and not on_test_store(_running):
        pytest.fail(
            f"{_running.nodeid} uses the test store ({how}) but the PostgreSQL pass would "
            f"deselect it: mark it (or its module) @pytest.mark.{STORE_MARK}",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    global _running
    _running = item
    try:
        return (yield)
    finally:
        _running = None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group the tests for pytest-xdist's `--dist loadgroup` (scripts/test): a module's tests
    run in one process, where they share its fixtures, except in a module marked `spread`
    (long tests that share nothing costly), whose tests each go where a process is free; the
    groups are handed out longest first (tests/longest_first.py). In a
    pass on another store than SQLite, deselect the tests that do not depend on it."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            spread = item.get_closest_marker("spread") is not None
            item.add_marker(pytest.mark.xdist_group(item.nodeid if spread else str(item.path)))
    if TEST_STORE == "sqlite":
        return
    kept = [item for item in items if on_test_store(item)]
    if len(kept) < len(items):
        kept_ids = {id(item) for item in kept}
        config.hook.pytest_deselected(items=[i for i in items if id(i) not in kept_ids])
        config.stash[_LEFT_OUT] = len(items) - len(kept)
        if hasattr(config, "workeroutput"):  # a pytest-xdist worker: its controller prints it
            config.workeroutput["left_out"] = len(items) - len(kept)
        items[:] = kept


_LEFT_OUT = pytest.StashKey[int]()


def pytest_testnodedown(node: Any, error: object) -> None:
    """(pytest-xdist, in the controlling process) The count a worker's collection left out:
    every worker collects the whole selection, so they all report the same."""
    left_out = getattr(node, "workeroutput", {}).get("left_out", 0)
    node.config.stash[_LEFT_OUT] = max(node.config.stash.get(_LEFT_OUT, 0), left_out)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    left_out = config.stash.get(_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(
            f"DATAPOLICY_TEST_STORE={TEST_STORE}: {left_out} tests deselected: they use no "
            f"service fixture and are not marked {STORE_MARK} (the SQLite pass runs them)"
        )


def token_for(data_dir: Path, *permissions: str, **claims: Any) -> str:
    """A token signed with the service's own key in `data_dir`, with the default issuer and
    audience, as `datapolicy token` makes one (`claims` override issue_token's arguments)."""
    defaults = AuthConfig()
    arguments: dict[str, Any] = {
        "issuer": defaults.issuer,
        "audience": defaults.audience,
        "permissions": permissions,
        "lifetime": TOKEN_LIFETIME_S,
        "subject": "tests",
        **claims,
    }
    return issue_token(signing_key(data_dir), **arguments)


@dataclass
class Service:
    """A running service, in process (`AppService`) or not (`ProcessService`)."""

    url: str  # the API root, e.g. http://127.0.0.1:PORT/v1.0
    data_dir: Path

    @property
    def root(self) -> str:
        """The server root, where the probes and /metrics are."""
        return self.url.removesuffix("/v1.0")

    @cached_property
    def token(self) -> str:
        """A token with every permission, for this service's own key."""
        return token_for(self.data_dir, *PERMISSIONS)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, timeout: float = 30, headers: dict[str, str] | None = None) -> httpx.Client:
        """An HTTP client for the API root that sends `headers` (default: the service's, with
        every permission; `{}` for none). Absolute URLs reach the same server (`root`)."""
        return httpx.Client(
            base_url=self.url,
            headers=self.headers if headers is None else headers,
            timeout=timeout,
            transport=self.transport,
        )

    @property
    def transport(self) -> httpx.BaseTransport | None:
        """How requests reach it: None for a real connection."""
        return None

    def stop(self) -> int | None:
        raise NotImplementedError


@dataclass
class ProcessService(Service):
    """`datapolicy serve` in a process of its own, on a loopback port."""

    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> int:
        return stop_process(self.process)


@dataclass
class AppService(Service):
    """The service in the test process (tests/inprocess.py); `stop` ends its lifespan."""

    requests: PortalTransport  # to the app, on its event loop
    lifespan: ExitStack

    @property
    def transport(self) -> httpx.BaseTransport:
        return self.requests

    @property
    def running(self) -> RunningService:
        """What the app's lifespan opened (its store, export threads, audit buffer)."""
        running = self.requests.app.running
        assert running is not None, "the service has stopped"
        return running

    def stop(self) -> None:
        self.lifespan.close()


def start_worker(
    root: Path, data_dir: Path, config: Path, *extra: str, own_store: bool = False
) -> subprocess.Popen[bytes]:
    """`datapolicy worker` on the data directory (and store) of a service, logging to
    `root/worker.log`. `own_store`: `extra` names the store (`--database`), whatever the test
    store is, so the test store is not asked for (`_reached_the_test_store`)."""
    log = root / "worker.log"
    with log.open("ab") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "datapolicy",
                "worker",
                "--data-dir",
                str(data_dir),
                "--config",
                str(config),
                *([] if own_store else store_args(data_dir)),
                *extra,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


STEPPED_WORKER = Path(__file__).with_name("steppedworker.py")


def stepped_command(root: Path, *arguments: str, **steps: str) -> tuple[list[str], dict[str, str]]:
    """`datapolicy ARGUMENTS` steered by files in `root` (tests/steppedworker.py; `steps` are its
    DATAPOLICY_STEP_* settings, e.g. `pause="1"`) and named after it: the command and its
    environment."""
    environment = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DATAPOLICY_STEP_DIR": str(root),
        "DATAPOLICY_STEP_NAME": root.name,
        **{f"DATAPOLICY_STEP_{key.upper()}": value for key, value in steps.items()},
    }
    return [sys.executable, str(STEPPED_WORKER), *arguments], environment


def wait_for(what: str, condition: Callable[[], T], timeout: float, logs: Callable[[], str]) -> T:
    """Poll `condition` until it returns something true, or fail after `timeout` seconds showing
    the end of `logs()`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}\n{logs()[-4000:]}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def service_database(data_dir: Path) -> Iterator[Database]:
    """The store of the processes on `data_dir`, opened in this process (another process than
    theirs, as a worker or another API process is): their PostgreSQL schema when the tests run
    on PostgreSQL, else the SQLite file in the data directory."""
    url = current_store_url(data_dir, "service_database") or f"sqlite:///{data_dir / DATABASE_FILE}"
    database = open_database(url, pool_min_size=0, pool_max_size=1)
    try:
        yield database
    finally:
        database.close()


def store_args(data_dir: Path) -> list[str]:
    """`--database URL` for a process on `data_dir` when the tests run on PostgreSQL (the same
    scratch schema for every process on that data directory), else nothing."""
    url = current_store_url(data_dir, "store_args")
    return [] if url is None else ["--database", url]


def current_store_url(data_dir: Path, how: str = "current_store_url") -> str | None:
    """The URL of the test store for the processes on `data_dir` (None: SQLite in it), for a
    test selected for every pass (`on_test_store`)."""
    _reached_the_test_store(how)
    return store_url(TEST_STORE, data_dir)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    close_session()  # drop the scratch databases the session made


def start_service(data_dir: Path, *args: str, own_store: bool = False) -> ProcessService:
    """Start `datapolicy serve` (on the test store; `own_store`: on the store `args` name with
    `--database`, whatever the test store is) and wait until it answers."""
    on_store = [] if own_store else store_args(data_dir)
    process, port, log = start_serve(data_dir, *on_store, *args, ready_path="/v1.0/openapi.json")
    return ProcessService(f"http://127.0.0.1:{port}/v1.0", data_dir, process, log)


def start_app(data_dir: Path, *args: str) -> AppService:
    """What `datapolicy serve ARGS` (on the test store) serves, in this process, once it
    answers as `start_service` waits for it to."""
    with ExitStack() as lifespan:
        requests = lifespan.enter_context(serve_in_process(data_dir, *store_args(data_dir), *args))
        service = AppService(f"{ORIGIN}/v1.0", data_dir, requests, lifespan.pop_all())
    try:
        with service.client(headers={}) as http:  # a token would make the service's key
            http.get("/openapi.json").raise_for_status()
    except BaseException:
        service.stop()
        raise
    return service


def write_config(root: Path, config: str) -> Path:
    """`config` (TOML) written to `root/datapolicy.toml`."""
    path = root / "datapolicy.toml"
    path.write_text(config)
    return path


def start_configured(root: Path, config: str, *args: str) -> ProcessService:
    """`start_service` on `root/data` with `config` (TOML) written to `root/datapolicy.toml`."""
    return start_service(root / "data", "--config", str(write_config(root, config)), *args)


def configured_app(root: Path, config: str, *args: str) -> AppService:
    """`start_app` on `root/data` with `config` (TOML) written to `root/datapolicy.toml`."""
    return start_app(root / "data", "--config", str(write_config(root, config)), *args)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppService]:
    """The API alone (no export workers), so operations stay as the tests left them."""
    running = start_app(tmp_path_factory.mktemp("service"), "--workers", "0")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def demo_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppService]:
    """A service with export workers, exporting from the bundled demo shop."""
    running = start_app(tmp_path_factory.mktemp("demo"), "--demo")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def service_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessService]:
    """`service` in a process of its own, for a program that needs its port."""
    running = start_service(tmp_path_factory.mktemp("service-process"), "--workers", "0")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def demo_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessService]:
    """`demo_service` in a process of its own, for a program that needs its port."""
    running = start_service(tmp_path_factory.mktemp("demo-process"), "--demo")
    yield running
    running.stop()


@pytest.fixture
def client(service: Service) -> Iterator[httpx.Client]:
    """An HTTP client for the session's service, with a token holding every permission."""
    with service.client() as http:
        yield http


@pytest.fixture
def user_id() -> str:
    """A user id no other test uses, so a test's operations are its own."""
    return str(uuid.uuid4())
