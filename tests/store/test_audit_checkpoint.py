"""The audit chain's signed checkpoint, on SQLite and PostgreSQL (each test runs on both):
deleting the last links of the chain and moving the head back to match (what the database's
owner can do behind the triggers' back) fails `verify`, for generated chains of single entries
and blocks cut at generated points, and putting the links back makes it pass again; a
checkpoint removed, edited or re-signed with another key fails too."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey
from sqlalchemy import Table, delete, select, update
from test_audit_log import START, Clock, fill, numbered, unguard

from datapolicy.store import Database
from datapolicy.store.audit import (
    GENESIS,
    AuditAction,
    AuditLog,
    AuditRecord,
    checkpoint_payload,
    open_audit_log,
)
from datapolicy.store.tables import audit_block, audit_checkpoint, audit_head, audit_log

KEY = ECKey.generate_key("P-256", parameters={"alg": "ES256"}, auto_kid=True)
OTHER_KEY = ECKey.generate_key("P-256", parameters={"alg": "ES256"}, auto_kid=True)


@pytest.fixture
def signed(database: Database) -> Iterator[AuditLog]:
    """A trail signed as the service signs it, its triggers dropped (the appends need none):
    the tests play the database's owner."""
    audit = open_audit_log(database, clock=Clock(), signing_key=KEY)
    unguard(audit)
    yield audit
    audit.close()


Link = tuple[Table, dict[str, Any]]


def links(log: AuditLog) -> list[Link]:
    """Every link of the chain as stored, single entries and blocks, in sequence order."""
    found: list[tuple[int, Link]] = []
    for table, key in ((audit_log, "sequence"), (audit_block, "first_sequence")):
        names = [column.name for column in table.columns]
        for row in log.database.fetch_all(select(table)):
            values = dict(zip(names, row, strict=True))
            if "entries" in values:
                values["entries"] = bytes(values["entries"])
            found.append((values[key], (table, values)))
    return [link for _, link in sorted(found, key=lambda item: item[0])]


def first_sequence(link: Link) -> int:
    values = link[1]
    return values.get("sequence", values.get("first_sequence"))


def last_sequence(link: Link) -> int:
    values = link[1]
    return values.get("sequence", values.get("last_sequence"))


def cut_tail(log: AuditLog, count: int) -> list[Link]:
    """Delete the last `count` links and set the head to the link before them: the chain
    that is left is consistent with its head. Returns what was deleted."""
    chain = links(log)
    removed, kept = chain[-count:], chain[:-count]
    for table, values in removed:
        key = table.c.sequence if table is audit_log else table.c.first_sequence
        log.database.execute(delete(table).where(key == first_sequence((table, values))))
    sequence, digest = (last_sequence(kept[-1]), kept[-1][1]["hash"]) if kept else (0, GENESIS)
    move_head(log, sequence, digest)
    return removed


def move_head(log: AuditLog, sequence: int, digest: str) -> None:
    log.database.execute(
        update(audit_head).where(audit_head.c.id == 1).values(sequence=sequence, hash=digest)
    )


def record(number: int) -> AuditRecord:
    return AuditRecord(AuditAction.OPERATION_READ, f"s{number}", START, user_id=f"u{number}")


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=5),
    cut=st.integers(min_value=1, max_value=12),
)
@example(sizes=[1], cut=1)  # the whole chain, one entry: the head back at the genesis
@example(sizes=[1, 1, 1, 1, 1], cut=1)  # the last entry of five (the report)
def test_a_tail_cut_with_the_head_moved_back_fails_and_passes_once_restored(
    signed: AuditLog, sizes: list[int], cut: int
):
    """Each example grows the same chain by `sizes` (1: an entry of its own, more: a block),
    cuts its last `cut` links, and puts them back."""
    number = len(signed.entries())
    for size in sizes:
        batch = [record(number + index) for index in range(1, size + 1)]
        number += size
        if size == 1:
            signed.append(batch)
        else:
            signed.append_block(batch)
    intact = signed.verify()
    assert intact.ok, intact.problem
    chain = links(signed)
    count = min(cut, len(chain))
    removed = cut_tail(signed, count)
    first_missing = first_sequence(removed[0])
    result = signed.verify()
    assert not result.ok
    assert result.broken_at == first_missing, result.problem
    assert f"missing from the end (the signed checkpoint records entry {number})" in (
        result.problem or ""
    )
    for table, values in removed:
        signed.database.execute(table.insert().values(values))
    move_head(signed, intact.entries, intact.head_hash)
    assert signed.verify() == intact


def resign(log: AuditLog, key: ECKey, sequence: int, digest: str) -> None:
    signature = jws.serialize_compact(
        {"alg": "ES256", "kid": key.kid}, checkpoint_payload(sequence, digest), key
    )
    log.database.execute(
        update(audit_checkpoint).values(sequence=sequence, hash=digest, signature=signature)
    )


def test_a_cut_tail_re_signed_with_another_key_fails(signed: AuditLog):
    fill(signed)
    cut_tail(signed, 2)
    head = signed.database.fetch_all(select(audit_head.c.sequence, audit_head.c.hash))[0]
    resign(signed, OTHER_KEY, head[0], head[1])
    result = signed.verify()
    assert (result.ok, result.broken_at) == (False, 3)
    assert "not signed by this service's key" in (result.problem or "")


def test_a_removed_checkpoint_fails(signed: AuditLog):
    fill(signed)
    cut_tail(signed, 1)
    signed.database.execute(delete(audit_checkpoint))
    result = signed.verify()
    assert not result.ok
    assert "no signed checkpoint" in (result.problem or "")


def test_a_checkpoint_edited_after_signing_fails(signed: AuditLog):
    fill(signed)
    cut_tail(signed, 1)
    head = signed.database.fetch_all(select(audit_head.c.sequence, audit_head.c.hash))[0]
    signed.database.execute(update(audit_checkpoint).values(sequence=head[0], hash=head[1]))
    result = signed.verify()
    assert not result.ok
    assert "changed after it was signed" in (result.problem or "")


def test_every_append_moves_the_checkpoint_with_the_head(signed: AuditLog):
    """Single entries and blocks both re-sign the head, in the appending transaction."""
    assert signed.verify().ok  # an empty trail needs no checkpoint
    fill(signed, 2)
    signed.append_block([record(3), record(4)])
    sequence, digest, _ = signed.database.fetch_all(
        select(audit_checkpoint.c.sequence, audit_checkpoint.c.hash, audit_checkpoint.c.signature)
    )[0]
    result = signed.verify()
    assert result.ok, result.problem
    assert (sequence, digest) == (4, result.head_hash)


def test_verify_on_a_trail_being_appended_to_sees_one_consistent_chain(database: Database):
    """`datapolicy audit verify` runs beside a live service: links, head and checkpoint are
    read in one snapshot, so entries appended between those reads are neither "missing from
    the end" nor "added behind the head"."""
    audit = open_audit_log(database, clock=Clock(), signing_key=KEY)
    stop = threading.Event()

    def append_until_stopped() -> None:
        number = 1
        while not stop.is_set():
            if number % 3:
                audit.append([numbered(number)])
                number += 1
            else:
                audit.append_block([numbered(number), numbered(number + 1)])
                number += 2

    appender = threading.Thread(target=append_until_stopped)
    appender.start()
    try:
        results = [audit.verify() for _ in range(40)]
    finally:
        stop.set()
        appender.join()
    try:
        assert [result.problem for result in results if not result.ok] == []
        assert audit.verify().ok
    finally:
        audit.close()
