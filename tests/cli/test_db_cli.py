"""`datapolicy db`: the operation store's schema revision, and migrating it on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from commands import datapolicy, json_output

from conftest import store_args
from datapolicy.store.database import head_revision

pytestmark = pytest.mark.operation_store  # starts services on the test store


def test_current_then_upgrade_then_current(tmp_path: Path):
    store = ("--data-dir", str(tmp_path), *store_args(tmp_path))
    before = json_output(datapolicy("db", "current", "--json", *store))
    assert before["revision"] != head_revision()
    assert before["upToDate"] is False
    upgraded = datapolicy("db", "upgrade", *store)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip().endswith(f": at revision {head_revision()} (the newest)")
    after = json_output(datapolicy("db", "current", "--json", *store))
    assert (after["revision"], after["upToDate"]) == (head_revision(), True)
    assert "password" not in after["store"]


def test_an_unreachable_store_is_one_line_without_its_password(tmp_path: Path):
    url = "postgresql://someone:secret@127.0.0.1:9/nowhere"
    for command in ("upgrade", "current"):
        result = datapolicy("db", command, "--data-dir", str(tmp_path), "--database", url)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "secret" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("Error: cannot ")
