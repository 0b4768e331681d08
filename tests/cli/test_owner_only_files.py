"""`datapolicy serve` makes its data directory and everything in it owner-only, whatever the
umask it was started with (022 and 000): directories 0700, files 0600, the SQLite store and
audit files with their -wal/-shm files, the signing key, the demo's files and a package
included. (On SQLite, where those files live in the data directory: the PostgreSQL pass has
nothing more to show.)"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from conftest import TEST_STORE, token_for, wait_for
from datapolicy.demo import demo_user_id
from datapolicy.testing.server import start_serve, stop_process


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.skipif(TEST_STORE != "sqlite", reason="the store's files are SQLite's")
@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask 022", "umask 000"])
def test_the_data_directory_and_every_file_in_it_are_owner_only(tmp_path: Path, umask: int):
    data_dir = tmp_path / "data"
    old = os.umask(umask)
    try:
        # The later --data-dir wins: the service makes its data directory itself; the log
        # stays beside it, written by this process.
        process, port, log = start_serve(tmp_path, "--data-dir", str(data_dir), "--demo")
    finally:
        os.umask(old)
    try:
        headers = {"Authorization": f"Bearer {token_for(data_dir, 'User.Export.All')}"}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}/v1.0", headers=headers, timeout=30
        ) as api:
            started = api.post("/dataPolicyOperations", json={"userId": demo_user_id(0)})
            assert started.status_code == 201, started.text
            url = f"/dataPolicyOperations/{started.json()['id']}"
            wait_for(
                "the export to complete",
                lambda: api.get(url).json()["status"] == "complete",
                60,
                log.read_text,
            )
        modes = {
            str(path.relative_to(tmp_path)): stat.S_IMODE(path.lstat().st_mode)
            for path in [data_dir, *data_dir.rglob("*")]
        }
        names = set(modes)
        assert {"data/datapolicy.sqlite3-wal", "data/datapolicy-audit.sqlite3-wal"} <= names
        assert any(name.endswith(".zip") for name in names)  # the package
        expected = {name: 0o700 if (tmp_path / name).is_dir() else 0o600 for name in modes}
        assert modes == expected
    finally:
        stop_process(process)
