"""Choosing the operation store: `[store]`, `--database` / `DATAPOLICY_DATABASE`, and what is
said about it (never its password); and several processes sharing one PostgreSQL store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import start_service
from databases import POSTGRESQL, store_url
from datapolicy.config import ConfigError, parse_config
from datapolicy.demo import demo_user_id
from datapolicy.settings import Settings

pytestmark = pytest.mark.operation_store  # starts services on the test store

SECRET = "s3cret-Pa55"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datapolicy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "DATAPOLICY_DATABASE"},
    )


def test_the_store_defaults_to_sqlite_in_the_data_directory(tmp_path: Path):
    config = parse_config("", tmp_path / "c.toml")
    settings = Settings(data_dir=tmp_path / "data", config=config)
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'datapolicy.sqlite3'}"
    assert (config.store.pool_min_size, config.store.pool_max_size) == (2, 10)


def test_store_url_relative_to_the_file_and_overridden_by_the_command_line(tmp_path: Path):
    config = parse_config('[store]\nurl = "sqlite:///ops.db"\n', tmp_path / "c.toml")
    assert config.store.url == f"sqlite:///{tmp_path / 'ops.db'}"
    settings = Settings(config=config)
    assert settings.database_url == config.store.url
    url = f"postgresql://dp:{SECRET}@db/datapolicy"
    overridden = settings.with_overrides(database=url)
    assert overridden.database_url == url
    assert SECRET not in repr(overridden)
    assert SECRET not in repr(parse_config(f'[store]\nurl = "{url}"\n', tmp_path / "c.toml"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f'[store]\nurl = "mysql+pymysql://u:{SECRET}@h/db"\n', "line 2: store.url:"),
        ('[store]\nurl = "sqlite://"\n', "must name a file"),
        ('[store]\nurl = "not a url"\n', "not a database URL"),
        ("[store]\npool_min_size = 5\npool_max_size = 4\n", "pool_min_size must not be greater"),
        ("[store]\npool_max_size = 0\n", "line 2: store.pool_max_size:"),
    ],
)
def test_store_mistakes_are_named_without_the_password(tmp_path: Path, text: str, expected: str):
    with pytest.raises(ConfigError) as raised:
        parse_config(text, tmp_path / "c.toml")
    assert expected in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_bad_database_option_is_a_usage_error_without_the_password(tmp_path: Path):
    result = run("worker", "--data-dir", str(tmp_path), "--database", f"mysql://u:{SECRET}@h/d")
    assert result.returncode == 2
    assert "SQLite" in result.stderr
    assert "PostgreSQL" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_an_unreachable_store_is_one_clear_line_without_the_password(tmp_path: Path):
    url = f"postgresql://dp:{SECRET}@127.0.0.1:1/datapolicy?connect_timeout=5"
    result = run("worker", "--data-dir", str(tmp_path), "--database", url)
    assert result.returncode == 1
    assert "cannot open the operation store at postgresql+psycopg://dp:***@127.0.0.1:1/" in (
        result.stderr
    )
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda root: root / "missing-directory" / "store.db", "Not a directory"),
        (lambda root: _write(root / "not-sqlite.db", b"not a database"), "file is not a database"),
    ],
    ids=["parent-is-not-a-directory", "not-a-sqlite-file"],
)
def test_a_sqlite_store_that_cannot_be_opened_is_one_clear_line(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
):
    """A SQLite store path that cannot hold a database gives one line naming it and exit 1,
    never a traceback."""
    (tmp_path / "missing-directory").write_text("a file where a directory should be")
    path = make(tmp_path)
    result = run("worker", "--data-dir", str(tmp_path / "data"), "--database", f"sqlite:///{path}")
    assert result.returncode == 1
    assert f"cannot open the operation store at sqlite:///{path}:" in result.stderr
    assert reason in result.stderr
    assert "Traceback" not in result.stderr


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_api_processes_and_a_worker_share_one_postgresql_store(tmp_path: Path):
    """Two API processes and a worker process on one PostgreSQL database (with a password in
    its URL, which no log shows): an export started through one API is run by the worker and
    seen complete through the other."""
    url = make_url(store_url(POSTGRESQL, tmp_path / "shared") or "")
    database = url.set(password=SECRET).render_as_string(hide_password=False)
    exports = tmp_path / "exports"
    exports.mkdir()
    config = tmp_path / "datapolicy.toml"
    config.write_text(f"[storage.local]\nroots = [{str(exports)!r}]\n")
    shared = ("--config", str(config), "--database", database)
    first = start_service(tmp_path / "api-1", "--workers", "0", *shared)
    second = start_service(tmp_path / "api-2", "--workers", "0", *shared)
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "datapolicy", "worker", "--demo", "--workers", "2"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "DATAPOLICY_DATA_DIR": str(tmp_path / "worker"),
                "DATAPOLICY_CONFIG": str(config),
                "DATAPOLICY_DATABASE": database,
            },
        )
    try:
        with first.client() as api_1, second.client() as api_2:
            response = api_1.post(
                f"/users/{demo_user_id(0)}/exportPersonalData",
                json={"storageLocation": str(exports)},
            )
            assert response.status_code == 202, response.text
            operation_id = response.headers["location"].rsplit("/", 1)[1]
            deadline = time.monotonic() + 60
            while (status := api_2.get(f"/dataPolicyOperations/{operation_id}").json())[
                "status"
            ] != "complete":
                assert status["status"] in ("notStarted", "running"), status
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            listed = api_2.get(
                "/dataPolicyOperations", params={"$filter": f"id eq '{operation_id}'"}
            )
            assert [op["id"] for op in listed.json()["value"]] == [operation_id]
        assert (exports / f"{operation_id}.zip").is_file()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        first.stop()
        second.stop()
    logs = log.read_text() + first.log.read_text() + second.log.read_text()
    assert "operation store: postgresql+psycopg://postgres:***@" in logs
    assert SECRET not in logs


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_the_store_option_is_in_the_help():
    for command in ("serve", "worker"):
        assert "--database" in run(command, "--help").stdout
