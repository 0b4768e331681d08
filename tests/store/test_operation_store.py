"""The operation store on SQLite and on PostgreSQL (each test runs on both):
query semantics, keyset paging, writes; the same answers from both."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from databases import store_database
from datapolicy.errors import Conflict, Forbidden, InvalidRequest, NotFound, PreconditionFailed
from datapolicy.model import (
    Approval,
    ApprovalStatus,
    Operation,
    OperationStatus,
    OperationType,
)
from datapolicy.odata.options import LIST_OPTIONS, QueryOptions, parse_query_options
from datapolicy.store import Database, OperationStore
from datapolicy.store.tables import operations
from datapolicy.store.timestamps import from_micros, to_micros

PENDING_APPROVAL = Approval(ApprovalStatus.PENDING)  # of an operation made without a requester


class TickingClock:
    """Each call is one second after the last, so submission order is unambiguous."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def __call__(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=next(self._ticks))


@pytest.fixture
def store(database: Database) -> OperationStore:
    return OperationStore(database, clock=TickingClock())


def create(store: OperationStore, user_id: str, location: str | None) -> Operation:
    return store.create(user_id, location)[0]


def query(store: OperationStore, **options: str) -> list[str]:
    """User ids of the matching operations, in the order the store returns them."""
    parsed = parse_query_options([(f"${k}", v) for k, v in options.items()], LIST_OPTIONS)
    return [op.user_id for op in store.list(parsed).items]


def set_status(store: OperationStore, operation_id: str, status: OperationStatus) -> None:
    store.database.execute(
        operations.update().where(operations.c.id == operation_id).values(status=status.value)
    )


def test_times_round_trip_at_microsecond_precision():
    moment = datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC)
    assert from_micros(to_micros(moment)) == moment
    assert to_micros(datetime(1970, 1, 1, tzinfo=UTC)) == 0


def test_migrating_twice_is_harmless(store_kind: str, tmp_path: Path):
    with store_database(store_kind, tmp_path) as database:
        database.migrate()
        assert OperationStore(database).count(QueryOptions()) == 0


def test_create_assigns_the_lifecycle_fields(store: OperationStore):
    operation = create(store, "alice", None)
    assert operation.status is OperationStatus.NOT_STARTED
    assert operation.progress == 0.0
    assert operation.completed_at is None
    assert operation.version == 1
    assert store.get(operation.id) == operation


def test_null_compares_as_odata_says_not_as_sql_does(store: OperationStore):
    create(store, "with", "file:///a")
    create(store, "without", None)
    assert query(store, filter="storageLocation ne 'file:///a'") == ["without"]
    assert query(store, filter="not (storageLocation eq 'file:///a')") == ["without"]
    assert query(store, filter="not contains(storageLocation, 'a')") == ["without"]
    assert query(store, filter="storageLocation eq null") == ["without"]
    assert query(store, filter="storageLocation in ('file:///a', null)") == ["with", "without"]
    assert query(store, filter="completedDateTime eq submittedDateTime") == []
    assert query(store, filter="completedDateTime ne submittedDateTime") == ["with", "without"]


def test_string_functions_are_case_sensitive_and_escape_wildcards(store: OperationStore):
    create(store, "Alice", "file:///100%_done")
    create(store, "alice", "file:///100x")
    assert query(store, filter="startswith(userId, 'A')") == ["Alice"]
    assert query(store, filter="contains(storageLocation, '%_')") == ["Alice"]
    assert query(store, filter="endswith(storageLocation, '0x')") == ["alice"]


def test_search_ignores_case_and_can_name_a_property(store: OperationStore):
    create(store, "Alice", "s3://bucket/ALICE")
    create(store, "bob", "s3://bucket/x")
    assert query(store, search='"alice"') == ["Alice"]
    assert query(store, search='"userId:BOB"') == ["bob"]
    assert query(store, search='"bucket" NOT "bob"') == ["Alice"]
    assert query(store, search='"notstarted"') == ["Alice", "bob"]


def test_orderby_sorts_nulls_first_ascending_and_last_descending(store: OperationStore):
    create(store, "b", "file:///2")
    create(store, "a", None)
    create(store, "c", "file:///1")
    assert query(store, orderby="storageLocation") == ["a", "c", "b"]
    assert query(store, orderby="storageLocation desc") == ["b", "c", "a"]
    assert query(store, orderby="userId desc") == ["c", "b", "a"]
    assert query(store) == ["b", "a", "c"]  # default: submission order


def test_equal_sort_keys_are_broken_by_id(store: OperationStore):
    created = [create(store, "same", None) for _ in range(5)]
    parsed = parse_query_options([("$orderby", "userId")], LIST_OPTIONS)
    assert [op.id for op in store.list(parsed).items] == sorted(op.id for op in created)


def pages(store: OperationStore, between_pages=lambda page: None, **options: str) -> list[str]:
    """Follow the skiptoken through every page, calling `between_pages` after each one."""
    seen: list[str] = []
    token = None
    while True:
        pairs = [(f"${k}", v) for k, v in options.items()]
        if token is not None:
            pairs.append(("$skiptoken", token.encode()))
        page = store.list(parse_query_options(pairs, LIST_OPTIONS))
        seen.extend(op.user_id for op in page.items)
        between_pages(page)
        if page.next is None:
            return seen
        token = page.next


@pytest.mark.parametrize(
    "orderby",
    ["submittedDateTime", "storageLocation desc", "storageLocation,userId desc", "status,progress"],
)
def test_paging_survives_inserts_and_deletes_between_pages(store: OperationStore, orderby: str):
    for n in range(20):
        create(store, f"u{n:02d}", None if n % 3 == 0 else f"file:///{n % 4}")
    doomed = iter(store.list(QueryOptions(top=999)).items[::-1])
    inserted = itertools.count(100)

    def churn(page):
        # Delete a row that has not been served yet, and add one.
        served = {op.id for op in page.items}
        for victim in doomed:
            if victim.id not in served:
                store.delete(victim.id, lambda op: True)
                break
        create(store, f"u{next(inserted)}", "file:///9")

    seen = pages(store, churn, orderby=orderby, top="3")
    assert len(seen) == len(set(seen)), "a row was served twice"
    original = {f"u{n:02d}" for n in range(20)}
    remaining = {op.user_id for op in store.list(QueryOptions(top=999)).items}
    assert (original & remaining) <= set(seen), "a row that existed throughout was skipped"


def test_skip_applies_before_the_first_page_only(store: OperationStore):
    for n in range(7):
        create(store, f"u{n}", None)
    assert pages(store, skip="2", top="2") == ["u2", "u3", "u4", "u5", "u6"]


def test_count_ignores_paging(store: OperationStore):
    for n in range(5):
        create(store, f"u{n}", None)
    page = store.list(parse_query_options([("$top", "2"), ("$count", "true")], LIST_OPTIONS))
    assert (len(page.items), page.count) == (2, 5)


def test_update_changes_version_only_when_something_changes(store: OperationStore):
    operation = create(store, "alice", None)
    same = store.update(operation.id, {"storageLocation": None}, lambda op: True)
    assert same.version == 1
    moved = store.update(operation.id, {"storageLocation": "file:///x"}, lambda op: True)
    assert (moved.storage_location, moved.version) == ("file:///x", 2)


def test_a_failed_precondition_changes_nothing(store: OperationStore):
    operation = create(store, "alice", None)
    with pytest.raises(PreconditionFailed):
        store.update(operation.id, {"storageLocation": "file:///x"}, lambda op: False)
    with pytest.raises(PreconditionFailed):
        store.delete(operation.id, lambda op: False)
    assert store.get(operation.id) == operation


def test_only_a_not_started_operation_can_change(store: OperationStore):
    operation = create(store, "alice", None)
    set_status(store, operation.id, OperationStatus.RUNNING)
    with pytest.raises(Conflict, match="running"):
        store.update(operation.id, {"storageLocation": "file:///x"}, lambda op: True)


def test_an_idempotency_key_returns_the_first_operation_for_a_day(store: OperationStore):
    first, created = store.create("alice", None, "key-1")
    again, created_again = store.create("alice", None, "key-1")
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert store.create("alice", None, "key-2")[0].id != first.id
    for _ in range(24 * 3600):  # the clock ticks a second per call: move a day ahead
        store.clock()
    assert store.create("alice", None, "key-1")[0].id != first.id


def test_delete_hides_at_once_but_keeps_running_work_for_cleanup(store: OperationStore):
    waiting, running = create(store, "a", None), create(store, "b", None)
    set_status(store, running.id, OperationStatus.RUNNING)
    store.delete(waiting.id, lambda op: True)
    store.delete(running.id, lambda op: True)
    for gone in (waiting, running):
        with pytest.raises(NotFound):
            store.get(gone.id)
    assert store.count(QueryOptions()) == 0
    remaining = store.database.fetch_all(operations.select())
    assert [row[0] for row in remaining] == [running.id]


def test_unknown_ids_are_not_found(store: OperationStore):
    with pytest.raises(NotFound):
        store.get("missing")
    with pytest.raises(NotFound):
        store.delete("missing", lambda op: True)


# --- the same answers on SQLite and PostgreSQL -------------------------------------------------

MIXED = ["b", "B", "a", "A", "_x", "Z9", "z", "é", "E", "ä", "0", " a", "a b", "ab", "aB"]


def test_strings_sort_and_compare_by_code_point_whatever_the_database_collation(
    store: OperationStore,
):
    """SQLite's BINARY order; on PostgreSQL the columns' "C" collation, not the database's
    default (the test database's is ICU en-US, where 'a' < 'B')."""
    for name in MIXED:
        create(store, name, None)
    assert query(store, orderby="userId") == sorted(MIXED)
    assert query(store, orderby="userId desc") == sorted(MIXED, reverse=True)
    assert query(store, filter="userId gt 'Z'", orderby="userId") == sorted(
        n for n in MIXED if n > "Z"
    )
    assert pages(store, orderby="userId", top="4") == sorted(MIXED)
    assert pages(store, orderby="userId desc,storageLocation", top="4") == sorted(
        MIXED, reverse=True
    )


def test_search_folds_ascii_letters_only(store: OperationStore):
    """Neither SQLite's lower() nor PostgreSQL's in the "C" collation folds 'Ä'."""
    for name in ("Ärger", "ärger", "ARGER"):
        create(store, name, None)
    assert query(store, search='"ärger"') == ["ärger"]
    assert query(store, search='"ÄRGER"') == ["Ärger"]
    assert query(store, search='"rger"') == ["Ärger", "ärger", "ARGER"]


def test_numbers_compare_alike_as_integers_and_fractions(store: OperationStore):
    for n, progress in enumerate((0.0, 49.5, 50.0, 100.0)):
        operation = create(store, f"p{n}", None)
        store.database.execute(
            operations.update().where(operations.c.id == operation.id).values(progress=progress)
        )
    assert query(store, filter="progress eq 50") == ["p2"]
    assert query(store, filter="progress gt 49") == ["p1", "p2", "p3"]
    assert query(store, filter="progress lt 49.75") == ["p0", "p1"]
    assert query(store, filter="progress in (0, 100.0)") == ["p0", "p3"]
    assert query(store, filter="progress ge -1e300") == ["p0", "p1", "p2", "p3"]
    assert pages(store, orderby="progress desc", top="1") == ["p3", "p2", "p1", "p0"]


def test_nullable_keys_page_in_the_same_order(store: OperationStore):
    """completedDateTime: null first ascending and last descending on both databases (ties
    broken by id), and the keyset pages walk through the nulls."""
    done = to_micros(datetime(2026, 2, 1, tzinfo=UTC))
    created = {}
    for n in range(7):
        operation = create(store, f"c{n}", None)
        completed = done - n if n % 2 else None
        created[operation.user_id] = (completed, operation.id)
        store.database.execute(
            operations.update()
            .where(operations.c.id == operation.id)
            .values(completed_at=completed)
        )
    ascending = sorted(created, key=lambda u: (created[u][0] is not None, created[u]))
    descending = sorted(
        created, key=lambda u: (created[u][0] is not None, created[u]), reverse=True
    )
    assert ascending[:4] == sorted(["c0", "c2", "c4", "c6"], key=lambda u: created[u][1])
    assert ascending[4:] == ["c5", "c3", "c1"]
    assert query(store, orderby="completedDateTime") == ascending
    assert query(store, orderby="completedDateTime desc") == descending
    assert pages(store, orderby="completedDateTime", top="2") == ascending
    assert pages(store, orderby="completedDateTime desc", top="2") == descending


def test_what_no_column_can_hold_is_refused_alike(store: OperationStore):
    with pytest.raises(InvalidRequest, match="at most 256"):
        store.create("u" * 257, None)
    with pytest.raises(InvalidRequest, match="NUL"):
        store.create("a\x00b", None)
    with pytest.raises(InvalidRequest, match="at most 2048"):
        store.create("alice", "/" + "x" * 2048)
    with pytest.raises(NotFound):
        store.get("a\x00b")
    with pytest.raises(NotFound):
        store.delete("a\x00b", lambda op: True)
    assert store.count(QueryOptions()) == 0


def test_an_idempotency_key_is_free_again_once_its_operation_is_deleted(store: OperationStore):
    first, _ = store.create("alice", None, "key-1")
    set_status(store, first.id, OperationStatus.RUNNING)
    store.delete(first.id, lambda op: True)  # marked, still there for cleanup
    second, created = store.create("alice", None, "key-1")
    assert created
    assert second.id != first.id
    assert store.create("alice", None, "key-1") == (second, False)


def test_the_requester_cannot_approve_their_own_erasure_through_another_application(
    store: OperationStore,
):
    """Approval is by another principal, the subject the token names (a person's `oid`, the
    same whichever client they sign in to): the requester's token from another application (the
    console's, a script's) is still the requester, refused; another subject through the
    requester's application approves."""
    requester = '["console", "alice"]'
    state = json.dumps({"dryRun": False, "requestedBy": requester, "committed": {}})
    waiting, _ = store.create(
        "ada", None, operation_type=OperationType.ERASE, erasure_state=state, approval_pending=True
    )
    for same_subject in ('["script", "alice"]', '[null, "alice"]'):
        with pytest.raises(Forbidden):
            store.approve(waiting.id, same_subject)
        assert store.get(waiting.id).approval == PENDING_APPROVAL
    approved = store.approve(waiting.id, '["console", "dpo"]')
    assert approved.approval is not None
    assert approved.approval.status is ApprovalStatus.APPROVED


def test_an_idempotency_key_used_for_another_request_is_a_conflict(store: OperationStore):
    """Another user or location with a used key is refused, both when the key is looked up
    first and when the insert finds it taken; the first operation is untouched."""
    first, _ = store.create("alice", "/exports/a", "key-1")
    for user_id, location in (("bob", "/exports/a"), ("alice", "/exports/b"), ("alice", None)):
        with pytest.raises(Conflict, match="different user or storage location"):
            store.create(user_id, location, "key-1")
        with pytest.raises(Conflict, match="different user or storage location"):
            store.find_started("key-1", user_id, location)
    assert store.find_started("key-1", "alice", "/exports/a") == first
    assert store.count(QueryOptions()) == 1


def test_an_idempotency_key_binds_an_erasure_and_its_dry_run_flag_too(store: OperationStore):
    """A key used for an export, or for a dry run, does not answer an erasure of the same user
    and location (nor the reverse): a 409, where a 202 with the export or the dry run would let
    the caller take the person for erased. The same start again is answered with its operation."""
    erase = OperationType.ERASE
    export, _ = store.create("alice", "/exports/a", "key-1")
    dry, _ = store.create("bob", "/exports/a", "key-2", operation_type=erase, dry_run=True)
    for asked in ({"operation_type": erase}, {"operation_type": erase, "dry_run": True}):
        with pytest.raises(Conflict, match="different"):
            store.create("alice", "/exports/a", "key-1", **asked)
        with pytest.raises(Conflict, match="different"):
            store.find_started("key-1", "alice", "/exports/a", **asked)
    for asked in ({}, {"operation_type": erase}):
        with pytest.raises(Conflict, match="different"):
            store.create("bob", "/exports/a", "key-2", **asked)
        with pytest.raises(Conflict, match="different"):
            store.find_started("key-2", "bob", "/exports/a", **asked)
    assert store.find_started("key-1", "alice", "/exports/a") == export
    again = store.create("bob", "/exports/a", "key-2", operation_type=erase, dry_run=True)
    assert again == (dry, False)
    assert store.count(QueryOptions()) == 2


def test_an_erasure_waiting_for_approval_says_so_until_another_principal_approves_it(
    store: OperationStore,
):
    """`approval` (docs/erasure.md): pending from the start while the erasure waits, approved
    with the approver and the time of the store's clock once `approve` took it, read back the
    same from the row and from a list page; None for an erasure that needs no approval and for
    an export."""
    requester, approver = '["app", "alice"]', '["app", "dpo"]'
    state = f'{{"dryRun": false, "requestedBy": {json.dumps(requester)}, "committed": {{}}}}'
    waiting, _ = store.create(
        "ada", None, operation_type=OperationType.ERASE, erasure_state=state, approval_pending=True
    )
    free, _ = store.create("bob", None, operation_type=OperationType.ERASE, erasure_state=state)
    export = create(store, "carol", None)
    assert waiting.approval == store.get(waiting.id).approval == PENDING_APPROVAL
    assert (free.approval, store.get(free.id).approval) == (None, None)
    assert (export.approval, store.get(export.id).approval) == (None, None)
    with pytest.raises(Forbidden):
        store.approve(waiting.id, requester)
    assert store.get(waiting.id).approval == PENDING_APPROVAL
    approved = store.approve(waiting.id, approver)
    expected = Approval(
        ApprovalStatus.APPROVED, approver, datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC)
    )
    assert approved.approval == store.get(waiting.id).approval == expected
    assert approved.version == waiting.version + 1 == store.get(waiting.id).version
    listed = {op.id: op.approval for op in store.list(QueryOptions()).items}
    assert listed == {waiting.id: expected, free.id: None, export.id: None}
    with pytest.raises(Conflict):
        store.approve(waiting.id, approver)  # once
    with pytest.raises(Conflict):
        store.approve(free.id, approver)  # it never waited


def test_an_erasure_keeps_whether_it_is_a_dry_run_and_who_requested_it_for_its_approver(
    store: OperationStore,
):
    """`dry_run` and `requested_by` (migration 0016): an erasure's as it was started, a dry
    run or not and its requester, read back the same from the row, from a list page and by a
    `$filter` and `$orderby` on `dryRun`, and kept once approved; an export has neither (its
    `dryRun` is None, whatever it is asked to store). The Boolean comes back as a bool from
    either database (0 or 1 on SQLite)."""
    erase = OperationType.ERASE
    alice, bob = '["app", "alice"]', '["app", "bob"]'
    dry, _ = store.create(
        "ada", None, operation_type=erase, approval_pending=True, dry_run=True, requested_by=alice
    )
    real, _ = store.create(
        "bob", None, operation_type=erase, approval_pending=True, requested_by=bob
    )
    free, _ = store.create("carol", None, operation_type=erase, requested_by=alice)
    export, _ = store.create("dan", None, dry_run=True, requested_by=alice)
    expected = {
        dry.id: (True, Approval(ApprovalStatus.PENDING, requested_by=alice)),
        real.id: (False, Approval(ApprovalStatus.PENDING, requested_by=bob)),
        free.id: (False, None),
        export.id: (None, None),
    }
    made = {op.id: (op.dry_run, op.approval) for op in (dry, real, free, export)}
    read = {op: (store.get(op).dry_run, store.get(op).approval) for op in expected}
    listed = {op.id: (op.dry_run, op.approval) for op in store.list(QueryOptions()).items}
    assert made == read == listed == expected
    assert all(type(store.get(op).dry_run) in (bool, type(None)) for op in expected)
    assert query(store, filter="dryRun eq false") == ["bob", "carol"]
    assert query(store, filter="dryRun eq null or dryRun eq true") == ["ada", "dan"]
    assert query(store, orderby="dryRun desc,userId") == ["ada", "bob", "carol", "dan"]
    approved = store.approve(real.id, '["app", "dpo"]')
    assert approved.approval is not None
    assert approved.approval.requested_by == bob
    assert store.get(real.id).approval == approved.approval


def test_what_was_approved_is_what_runs(store: OperationStore):
    """An approval holds for the version its approver read (If-Match: 412 for another, nothing
    approved), and once given the erasure cannot be changed (409 `OperationNotModifiable`,
    nothing changed): its destination is the one approved."""
    requester, approver = '["app", "alice"]', '["app", "dpo"]'
    state = json.dumps({"dryRun": False, "requestedBy": requester, "committed": {}})
    waiting, _ = store.create(
        "ada",
        "/exports/a",
        operation_type=OperationType.ERASE,
        erasure_state=state,
        approval_pending=True,
    )
    read = waiting.version
    moved = store.update(waiting.id, {"storageLocation": "/exports/b"}, lambda op: True)
    with pytest.raises(PreconditionFailed):
        store.approve(waiting.id, approver, precondition=lambda op: op.version == read)
    assert store.get(waiting.id).approval == PENDING_APPROVAL
    approved = store.approve(
        waiting.id, approver, precondition=lambda op: op.version == moved.version
    )
    with pytest.raises(Conflict, match="approved") as refused:
        store.update(waiting.id, {"storageLocation": "/exports/c"}, lambda op: True)
    assert refused.value.code == "OperationNotModifiable"
    assert store.get(waiting.id) == approved
    assert approved.storage_location == "/exports/b"
