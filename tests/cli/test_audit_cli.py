"""`datapolicy audit verify` and `datapolicy audit list`, run as commands against a store on
SQLite (the data directory's) and on PostgreSQL (`--database`): verify exits 0 on an intact
trail and 1 naming the first bad entry once an entry was edited behind the guards' back; list
filters and prints JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from commands import datapolicy
from sqlalchemy import text

from databases import SQLITE, store_url
from datapolicy.auth.keys import audit_key
from datapolicy.settings import DATABASE_FILE
from datapolicy.store.audit import AuditAction, AuditLog, open_audit_log
from datapolicy.store.database import open_database


@pytest.fixture
def store_options(store_kind: str, tmp_path: Path) -> list[str]:
    """The options that name the test's store: its data directory, and on PostgreSQL a
    scratch schema."""
    url = None if store_kind == SQLITE else store_url(store_kind, tmp_path)
    return ["--data-dir", str(tmp_path), *(["--database", url] if url else [])]


@pytest.fixture
def trail(store_options: list[str], tmp_path: Path) -> Iterator[AuditLog]:
    """The store's audit trail with three entries, written as the service writes them: its
    head signed with the data directory's key."""
    url = store_options[3] if len(store_options) > 2 else f"sqlite:///{tmp_path / DATABASE_FILE}"
    database = open_database(url)
    database.migrate()
    log = open_audit_log(database, signing_key=audit_key(tmp_path))
    log.record(AuditAction.OPERATION_STARTED, subject="alice", user_id="u1", operation_id="o1")
    log.record(AuditAction.OPERATION_READ, subject="bob", user_id="u1", operation_id="o1")
    log.record(AuditAction.OPERATION_DELETED, subject="alice", user_id="u2", operation_id="o2")
    yield log
    log.close()
    database.close()


def test_verify_passes_an_intact_trail_and_names_the_first_edited_entry(
    trail: AuditLog, store_options: list[str]
):
    intact = datapolicy("audit", "verify", *store_options)
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.startswith("OK, 3 entries (last hash ")
    if trail.database.dialect.name == "postgresql":
        trail.database.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
    else:
        trail.database.execute(text("DROP TRIGGER audit_log_no_update"))
    trail.database.execute(text("UPDATE audit_log SET subject = 'mallory' WHERE sequence = 2"))
    broken = datapolicy("audit", "verify", *store_options)
    assert broken.returncode == 1
    assert "BROKEN at entry 2: its hash does not match its contents" in broken.stderr


def test_verify_finds_the_tail_deleted_and_the_head_moved_back(
    trail: AuditLog, store_options: list[str]
):
    """Behind the guards' back the last entry goes and the head is set to the one before:
    the chain alone is consistent, the signed checkpoint is not."""
    second = trail.entries()[1]
    if trail.database.dialect.name == "postgresql":
        for table in ("audit_log", "audit_head"):
            trail.database.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    else:
        for trigger in ("audit_log_no_delete", "audit_head_forward"):
            trail.database.execute(text(f"DROP TRIGGER {trigger}"))
    trail.database.execute(text("DELETE FROM audit_log WHERE sequence = 3"))
    trail.database.execute(
        text("UPDATE audit_head SET sequence = 2, hash = :hash").bindparams(hash=second.hash)
    )
    broken = datapolicy("audit", "verify", *store_options)
    assert broken.returncode == 1
    assert "BROKEN at entry 3: entry 3 is missing from the end" in broken.stderr


def test_list_filters_and_prints_json(trail: AuditLog, store_options: list[str]):
    del trail
    by_user = datapolicy("audit", "list", *store_options, "--user", "u1", "--json")
    assert by_user.returncode == 0, by_user.stderr
    entries = json.loads(by_user.stdout)
    assert [(e["sequence"], e["action"], e["subject"]) for e in entries] == [
        (1, "operation.started", "alice"),
        (2, "operation.read", "bob"),
    ]
    assert set(entries[0]) >= {"at", "userId", "operationId", "client", "requestId", "hash"}
    table = datapolicy(
        "audit", "list", *store_options, "--subject", "alice", "--action", "operation.deleted"
    )
    assert table.returncode == 0, table.stderr
    assert "operation.deleted" in table.stdout
    assert "operation.started" not in table.stdout


def test_list_refuses_a_time_that_is_not_iso_8601(tmp_path: Path):
    result = datapolicy("audit", "list", "--data-dir", str(tmp_path), "--since", "yesterday")
    assert result.returncode == 2
    assert "not an ISO 8601 time" in result.stderr
