"""The audit trail's store on SQLite and PostgreSQL (each test runs on both): appending links
entries into a hash chain that `verify` accepts; the database refuses edits; and every kind of
tampering done behind the guards' back (an edited field, an entry deleted in the middle or at
the end, reordered entries, an inserted entry) makes `verify` fail naming the first bad entry."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from datapolicy.store import Database
from datapolicy.store.audit import (
    GENESIS,
    AuditAction,
    AuditFilter,
    AuditLog,
    AuditRecord,
    canonical,
    entry_hash,
    open_audit_log,
)
from datapolicy.store.tables import audit_block, audit_log

START = datetime(2026, 11, 1, tzinfo=UTC)


class Clock:
    """A minute per call, from START."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return START + timedelta(minutes=self.calls)


@pytest.fixture
def log(database: Database) -> Iterator[AuditLog]:
    audit = open_audit_log(database, clock=Clock())
    yield audit
    audit.close()


def test_an_entry_hashes_the_same_bytes_as_ever() -> None:
    """The canonical form is part of the stored chain: entries written by earlier versions must
    keep verifying, so its bytes (and so the hash) are pinned here literally."""
    record = AuditRecord(
        AuditAction.OPERATION_STARTED,
        "alice",
        datetime(2026, 11, 1, 12, 0, 0, 5, tzinfo=UTC),
        app_id="app",
        user_id="u1",
        operation_id="op1",
        client="10.0.0.1",
        request_id="req1",
    )
    assert canonical(7, record, GENESIS) == (
        b'{"action":"operation.started","appId":"app","at":1793534400000005,'
        b'"client":"10.0.0.1","operationId":"op1","previousHash":"' + GENESIS.encode() + b'",'
        b'"requestId":"req1","sequence":7,"subject":"alice","userId":"u1"}'
    )
    assert entry_hash(7, record, GENESIS) == (
        "cdc125b23b9cb82f6f49c463909942a1244a9a876ca70cfe4d5ff4d9e3deb5c2"
    )


def numbered(number: int) -> AuditRecord:
    """Entry `number` of the test logs: user u<n>, subject s<n % 2>, operation o<n>, at
    START + n minutes; odd ones are starts, even ones reads."""
    return AuditRecord(
        AuditAction.OPERATION_STARTED if number % 2 else AuditAction.OPERATION_READ,
        subject=f"s{number % 2}",
        at=START + timedelta(minutes=number),
        app_id="app",
        user_id=f"u{number}",
        operation_id=f"o{number}",
        client="127.0.0.1",
        request_id=f"r{number}",
    )


def fill(log: AuditLog, count: int = 5) -> None:
    """Entries 1..count, each appended on its own."""
    for number in range(1, count + 1):
        log.append([numbered(number)])


def fill_with_a_block(log: AuditLog) -> None:
    """Entries 1..5, of which 2, 3 and 4 are appended together as one block."""
    log.append([numbered(1)])
    log.append_block([numbered(2), numbered(3), numbered(4)])
    log.append([numbered(5)])


LAYOUTS = {"single entries": fill, "with a block": fill_with_a_block}


def unguard(log: AuditLog) -> None:
    """Drop the triggers' protection, as someone with the database's owner rights could."""
    if log.database.dialect.name == "postgresql":
        statements = [
            "ALTER TABLE audit_log DISABLE TRIGGER USER",
            "ALTER TABLE audit_block DISABLE TRIGGER USER",
            "ALTER TABLE audit_head DISABLE TRIGGER USER",
        ]
    else:
        statements = [
            f"DROP TRIGGER {name}"
            for name in (
                "audit_log_no_update",
                "audit_log_no_delete",
                "audit_block_no_update",
                "audit_block_no_delete",
                "audit_head_forward",
                "audit_head_no_delete",
            )
        ]
    for statement in statements:
        log.database.execute(text(statement))


def sql(log: AuditLog, statement: str) -> None:
    log.database.execute(text(statement))


def test_appended_entries_form_a_chain_that_verifies(log: AuditLog):
    fill(log)
    entries = log.entries()
    assert [entry.sequence for entry in entries] == [1, 2, 3, 4, 5]
    assert entries[0].previous_hash == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.previous_hash == before.hash
    for entry in entries:
        assert entry.hash == entry_hash(entry.sequence, entry.record, entry.previous_hash)
    result = log.verify()
    assert result.ok, result.problem
    assert (result.entries, result.head_hash) == (5, entries[-1].hash)


def test_an_empty_log_verifies(log: AuditLog):
    result = log.verify()
    assert result.ok
    assert (result.entries, result.head_hash) == (0, GENESIS)


def test_an_entry_keeps_every_field(log: AuditLog):
    log.record(
        AuditAction.OPERATION_DELETED,
        subject="sub",
        app_id="app",
        user_id="user",
        operation_id="op",
        client="2001:db8::1",
        request_id="req",
    )
    (entry,) = log.entries()
    assert entry.record == AuditRecord(
        action=AuditAction.OPERATION_DELETED,
        subject="sub",
        at=START + timedelta(minutes=1),
        app_id="app",
        user_id="user",
        operation_id="op",
        client="2001:db8::1",
        request_id="req",
    )


def test_the_database_refuses_to_change_or_delete_entries(log: AuditLog):
    fill(log, 3)
    for statement in (
        "UPDATE audit_log SET user_id = 'someone-else' WHERE sequence = 2",
        "DELETE FROM audit_log WHERE sequence = 2",
        "UPDATE audit_head SET sequence = 1",
        "DELETE FROM audit_head",
    ):
        with pytest.raises(Exception, match=r"append-only|only moves forward"):
            sql(log, statement)
    assert log.verify().ok


TAMPERING: dict[str, tuple[list[str], int]] = {
    # name: (statements, the first bad entry verify must name)
    "field edited": (["UPDATE audit_log SET user_id = 'someone-else' WHERE sequence = 3"], 3),
    "time edited": (["UPDATE audit_log SET at = at + 1 WHERE sequence = 4"], 4),
    "middle entry deleted": (["DELETE FROM audit_log WHERE sequence = 3"], 4),
    "first entry deleted": (["DELETE FROM audit_log WHERE sequence = 1"], 2),
    "tail deleted": (["DELETE FROM audit_log WHERE sequence >= 4"], 4),
    "last entry deleted": (["DELETE FROM audit_log WHERE sequence = 5"], 5),
    "entries reordered": (
        [
            "UPDATE audit_log SET sequence = 100 WHERE sequence = 2",
            "UPDATE audit_log SET sequence = 2 WHERE sequence = 3",
            "UPDATE audit_log SET sequence = 3 WHERE sequence = 100",
        ],
        2,
    ),
    "last entry's hash rewritten": (
        ["UPDATE audit_log SET hash = previous_hash WHERE sequence = 5"],
        5,
    ),
}


@pytest.mark.parametrize("case", TAMPERING)
def test_verify_names_the_first_entry_tampering_broke(log: AuditLog, case: str):
    statements, first_bad = TAMPERING[case]
    fill(log)
    unguard(log)
    for statement in statements:
        sql(log, statement)
    result = log.verify()
    assert not result.ok
    assert result.broken_at == first_bad, result.problem


def test_an_inserted_entry_with_a_correct_hash_is_caught_by_the_head(log: AuditLog):
    """A forger who knows the hash recipe appends an entry but cannot move the head (the
    trigger) without being noticed: the chain then runs past its head."""
    fill(log, 3)
    last = log.entries()[-1]
    forged = AuditRecord(AuditAction.OPERATION_DELETED, "forger", START)
    row = {
        "sequence": 4,
        "at": 1,
        "action": str(forged.action),
        "subject": forged.subject,
        "previous_hash": last.hash,
        "hash": entry_hash(4, forged, last.hash),
    }
    log.database.execute(audit_log.insert().values(row))
    result = log.verify()
    assert (result.ok, result.broken_at) == (False, 4), result.problem


def test_an_entry_inserted_in_the_middle_is_caught(log: AuditLog):
    fill(log, 4)
    unguard(log)
    for sequence in (4, 3):  # make room for a new entry 3
        sql(log, f"UPDATE audit_log SET sequence = {sequence + 1} WHERE sequence = {sequence}")
    sql(
        log,
        "INSERT INTO audit_log (sequence, at, action, subject, previous_hash, hash) "
        f"VALUES (3, 0, 'operation.read', 'forger', '{GENESIS}', '{GENESIS}')",
    )
    result = log.verify()
    assert (result.ok, result.broken_at) == (False, 3), result.problem


def test_a_block_is_one_link_of_the_chain_and_keeps_every_entry(log: AuditLog):
    fill_with_a_block(log)
    entries = log.entries()
    assert [entry.sequence for entry in entries] == [1, 2, 3, 4, 5]
    assert [entry.record for entry in entries] == [numbered(n) for n in range(1, 6)]
    assert [entry.block for entry in entries] == [None, 2, 2, 2, None]
    single, *block, last = entries
    assert {(e.previous_hash, e.hash) for e in block} == {(single.hash, block[0].hash)}
    assert last.previous_hash == block[0].hash
    result = log.verify()
    assert result.ok, result.problem
    assert (result.entries, result.head_hash) == (5, last.hash)


def test_the_database_refuses_to_change_or_delete_blocks(log: AuditLog):
    fill_with_a_block(log)
    for statement in (
        "UPDATE audit_block SET first_at = 0",
        "DELETE FROM audit_block",
    ):
        with pytest.raises(Exception, match=r"append-only"):
            sql(log, statement)
    assert log.verify().ok


def _edit_entries(entries: bytes) -> bytes:
    return entries.replace(b'"u3"', b'"u9"')


BLOCK_TAMPERING: dict[str, tuple[dict[str, Any] | None, int]] = {
    # name: (new values for the block (None: delete it), the first bad entry verify must name)
    "an entry in it edited": ({"entries": _edit_entries}, 2),
    "its entries garbled": ({"entries": lambda _: b"[[1,"}, 2),
    "its time range edited": ({"first_at": lambda at: at + 1}, 2),
    "its range shortened": ({"last_sequence": lambda last: last - 1}, 2),
    "its hash rewritten": ({"hash": lambda _: GENESIS}, 2),
    "deleted": (None, 5),
}


@pytest.mark.parametrize("case", BLOCK_TAMPERING)
def test_verify_names_the_first_entry_of_a_tampered_block(log: AuditLog, case: str):
    changes, first_bad = BLOCK_TAMPERING[case]
    fill_with_a_block(log)
    unguard(log)
    where = audit_block.c.first_sequence == 2
    if changes is None:
        log.database.execute(audit_block.delete().where(where))
    else:
        (row,) = log.database.fetch_all(audit_block.select().where(where))
        stored = dict(zip(audit_block.c.keys(), row, strict=True))
        values = {name: change(stored[name]) for name, change in changes.items()}
        log.database.execute(audit_block.update().where(where).values(values))
    result = log.verify()
    assert not result.ok
    assert result.broken_at == first_bad, result.problem


def test_a_block_of_thousands_verifies_and_lists_its_newest(log: AuditLog):
    records = [numbered(n) for n in range(1, 3001)]
    log.append_block(records[:2000])
    log.append([records[2000]])
    log.append_block(records[2001:])
    assert log.verify().entries == 3000
    newest = log.entries(AuditFilter(limit=3))
    assert [entry.sequence for entry in newest] == [2998, 2999, 3000]
    assert [entry.sequence for entry in log.entries(AuditFilter(user_id="u2001"))] == [2001]


def test_concurrent_appends_never_fork_the_chain(log: AuditLog):
    threads, per_thread = 6, 20

    def append(number: int) -> None:
        for index in range(per_thread):
            log.record(AuditAction.OPERATION_READ, subject=f"t{number}", request_id=str(index))

    workers = [threading.Thread(target=append, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    result = log.verify()
    assert result.ok, result.problem
    assert result.entries == threads * per_thread


@pytest.mark.parametrize("layout", LAYOUTS)
def test_entries_are_filtered_oldest_first(log: AuditLog, layout: str):
    LAYOUTS[layout](log)
    cases = {
        "everything": (AuditFilter(), [1, 2, 3, 4, 5]),
        "user": (AuditFilter(user_id="u2"), [2]),
        "subject": (AuditFilter(subject="s1"), [1, 3, 5]),
        "action": (AuditFilter(action=AuditAction.OPERATION_READ), [2, 4]),
        "operation": (AuditFilter(operation_id="o4"), [4]),
        "since": (AuditFilter(since=START + timedelta(minutes=4)), [4, 5]),
        "until": (AuditFilter(until=START + timedelta(minutes=2)), [1]),
        "limit takes the newest": (AuditFilter(limit=2), [4, 5]),
        "a limit of nearly all": (AuditFilter(limit=4), [2, 3, 4, 5]),
        "a limit above the count": (AuditFilter(limit=7), [1, 2, 3, 4, 5]),
        "combined": (AuditFilter(subject="s1", since=START + timedelta(minutes=2)), [3, 5]),
    }
    found = {name: [e.sequence for e in log.entries(f)] for name, (f, _) in cases.items()}
    assert found == {name: expected for name, (_, expected) in cases.items()}


def test_the_start_request_id_is_found_for_the_engine(log: AuditLog):
    fill(log)
    assert log.request_of_start("o3") == "r3"
    assert log.request_of_start("o2") is None  # entry 2 is a read, not a start
