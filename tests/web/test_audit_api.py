"""Every API action leaves exactly its audit entries, through a running service: starts,
reads (the fast path, its read cache, and the routed path), lists and counts, PATCH, DELETE,
the worker's publishing and package deletion, user reads, and a 403; a 401 and a 404 leave
none. Entries name the token's subject and app id, the client's address and the request id;
X-Forwarded-For counts only from a trusted proxy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from conftest import AppService, Service, configured_app, service_database, token_for, wait_for
from datapolicy.auth.keys import audit_key
from datapolicy.auth.permissions import READ_USERS
from datapolicy.demo import demo_user_id
from datapolicy.engine import EXPORTS_DIR
from datapolicy.store.audit import (
    WORKER_SUBJECT,
    AuditAction,
    AuditEntry,
    AuditFilter,
    AuditLog,
    open_audit_log,
)

pytestmark = pytest.mark.operation_store  # starts services on the test store

ADA = demo_user_id(0)
# The service's [audit] flush_seconds: longer than the tests, so that buffered read entries are
# appended when a test flushes them (`of_request`), not on a clock.
FLUSH_SECONDS = 60
APP_ID = "datapolicy-cli"  # what `datapolicy token` (and token_for) put in azp


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service with export workers on the demo shop."""
    config = f"[audit]\nflush_seconds = {FLUSH_SECONDS}\n"
    running = configured_app(tmp_path_factory.mktemp("audit"), config, "--demo")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def trail(audited: Service) -> Iterator[AuditLog]:
    """The service's audit trail, read as `datapolicy audit` reads it (with the data
    directory's key, which checks the head's signed checkpoint)."""
    with service_database(audited.data_dir) as database:
        log = open_audit_log(database, signing_key=audit_key(audited.data_dir))
        yield log
        log.close()


@pytest.fixture(scope="module")
def api(audited: Service) -> Iterator[httpx.Client]:
    token = token_for(audited.data_dir, "User.Export.All", "User.Read.All")
    with audited.client(headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def of_request(audited: AppService, trail: AuditLog, response: httpx.Response) -> list[AuditEntry]:
    """The entries the request left, buffered ones appended first (not the worker's, which
    carry the id of the request that started their export)."""
    audited.running.audit.buffer.flush()
    request_id = response.headers["request-id"]
    return [
        entry
        for entry in trail.entries()
        if entry.record.request_id == request_id and entry.record.subject != WORKER_SUBJECT
    ]


def actions(entries: list[AuditEntry]) -> list[str]:
    return [str(entry.record.action) for entry in entries]


def start(api: httpx.Client, **headers: str) -> httpx.Response:
    response = api.post("/dataPolicyOperations", json={"userId": ADA}, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response


def test_a_start_is_recorded_with_who_whom_and_where(api, audited, trail):
    response = start(api)
    (entry,) = of_request(audited, trail, response)
    record = entry.record
    assert record.action is AuditAction.OPERATION_STARTED
    assert (record.subject, record.app_id) == ("tests", APP_ID)
    assert (record.user_id, record.operation_id) == (ADA, response.json()["id"])
    assert record.client == "127.0.0.1"


def test_the_export_action_is_recorded_as_a_start(api, audited, trail):
    refused = api.post(f"/users/{ADA}/exportPersonalData", json={"storageLocation": ""})
    assert refused.status_code == 400  # nothing was started
    location = str((audited.data_dir / EXPORTS_DIR).absolute())
    response = api.post(f"/users/{ADA}/exportPersonalData", json={"storageLocation": location})
    assert response.status_code == 202, response.text
    entries = of_request(audited, trail, response)
    assert actions(entries) == ["operation.started"]
    assert entries[0].record.operation_id == response.headers["Location"].rsplit("/", 1)[1]
    assert of_request(audited, trail, refused) == []


def test_a_repeated_start_is_recorded_as_a_read(api, audited, trail):
    key = str(uuid.uuid4())
    first = start(api, **{"client-request-id": key})
    again = start(api, **{"client-request-id": key})
    assert again.status_code == 200
    assert actions(of_request(audited, trail, first)) == ["operation.started"]
    assert actions(of_request(audited, trail, again)) == ["operation.read"]


def test_every_get_by_id_is_a_read_from_the_cache_or_not(api, audited, trail):
    """Read once the export is complete, so that no worker changes the operation (and its
    ETag) between the reads; a start first empties the read cache (any commit does), so the
    fast path is read from the store once and then from the cache."""
    operation_id = start(api).json()["id"]
    wait_for(
        "the export to complete",
        lambda: api.get(f"/dataPolicyOperations/{operation_id}").json()["status"] == "complete",
        60,
        str,  # its log is this process's, in the captured output
    )
    start(api)
    responses = [
        api.get(f"/dataPolicyOperations/{operation_id}"),  # the fast path, a cache miss
        api.get(f"/dataPolicyOperations/{operation_id}"),  # the fast path, a cache hit
        api.get(f"/dataPolicyOperations/{operation_id}", params={"$select": "id"}),  # routed
    ]
    etag = responses[0].headers["ETag"]
    responses.append(
        api.get(f"/dataPolicyOperations/{operation_id}", headers={"If-None-Match": etag})
    )
    assert [response.status_code for response in responses] == [200, 200, 200, 304]
    for response in responses:
        entries = of_request(audited, trail, response)
        assert actions(entries) == ["operation.read"]
        assert (entries[0].record.operation_id, entries[0].record.user_id) == (operation_id, ADA)


def test_lists_and_counts_are_recorded(api, audited, trail):
    for response in (
        api.get("/dataPolicyOperations", params={"$top": "2"}),
        api.get("/dataPolicyOperations/$count"),
    ):
        assert response.status_code == 200
        assert actions(of_request(audited, trail, response)) == ["operation.listed"]


def test_a_patch_and_a_delete_are_recorded(api, audited, trail):
    """The PATCH has to reach the operation before a worker claims it: a running export's
    location cannot change (409, which records nothing), so with the workers racing it, a few
    operations are tried."""
    for _ in range(10):
        operation = start(api).json()
        patched = api.patch(
            f"/dataPolicyOperations/{operation['id']}",
            json={"storageLocation": operation["storageLocation"] + "/again"},
        )
        if patched.status_code != 409:
            break
        assert of_request(audited, trail, patched) == []
    assert patched.is_success, patched.text
    deleted = api.delete(f"/dataPolicyOperations/{operation['id']}")
    assert deleted.status_code == 204
    for response, action in ((patched, "operation.updated"), (deleted, "operation.deleted")):
        entries = of_request(audited, trail, response)
        assert actions(entries) == [action]
        assert entries[0].record.user_id == ADA


def test_the_worker_records_publishing_and_deleting_a_package(api, audited, trail):
    started = start(api)
    operation_id = started.json()["id"]

    def about_it() -> list[str]:
        return actions(trail.entries(AuditFilter(operation_id=operation_id)))

    wait_for(
        "the package to be published",
        lambda: "package.published" in about_it(),
        60,
        str,  # its log is this process's, in the captured output
    )
    (published,) = trail.entries(
        AuditFilter(operation_id=operation_id, action=AuditAction.PACKAGE_PUBLISHED)
    )
    assert published.record.subject == WORKER_SUBJECT
    assert published.record.request_id == started.headers["request-id"]  # the start's
    assert published.record.user_id == ADA
    assert api.delete(f"/dataPolicyOperations/{operation_id}").status_code == 204
    wait_for(
        "the package to be deleted",
        lambda: "package.deleted" in about_it(),
        60,
        str,  # its log is this process's, in the captured output
    )
    reads = {"operation.read"}  # polling between the entries, if any, is not asserted here
    assert [a for a in about_it() if a not in reads] == [
        "operation.started",
        "package.published",
        "operation.deleted",
        "package.deleted",
    ]


def test_users_reads_are_recorded(api, audited, trail):
    listed = api.get("/users", params={"$top": "1"})
    read = api.get(f"/users/{ADA}")
    assert actions(of_request(audited, trail, listed)) == ["user.read"]
    entries = of_request(audited, trail, read)
    assert actions(entries) == ["user.read"]
    assert entries[0].record.user_id == ADA


def test_refusals_of_an_erasure_by_its_handler_are_recorded_as_denied(tmp_path):
    """The 403s a route gives after the token passed (web/routes/operations.py), as the
    middleware's are: the requester approving their own erasure, and a PATCH or DELETE of an
    erasure without PersonalData.Erase.All, each leave one access.denied naming the caller and
    the operation; a dry run without User.Export.All leaves one naming the caller."""
    config = f'[audit]\nflush_seconds = {FLUSH_SECONDS}\n[erasure]\napproval = "required"\n'
    service = configured_app(tmp_path, config, "--demo", "--workers", "0")
    requester = token_for(service.data_dir, "User.Export.All", "PersonalData.Erase.All")
    exporter = token_for(service.data_dir, "User.Export.All", subject="exporter")
    eraser = token_for(service.data_dir, "PersonalData.Erase.All", subject="eraser")
    try:
        with (
            service_database(service.data_dir) as database,
            service.client(headers={"Authorization": f"Bearer {requester}"}) as client,
        ):
            log = open_audit_log(database, signing_key=audit_key(service.data_dir))
            started = client.post(f"/users/{ADA}/erasePersonalData", json={})
            url = started.headers["Location"]
            operation_id = url.rsplit("/", 1)[1]
            as_exporter = {"Authorization": f"Bearer {exporter}"}
            refused = [
                ("tests", client.post(f"{url}/approve")),
                ("exporter", client.delete(url, headers=as_exporter)),
                ("exporter", client.patch(url, json={}, headers=as_exporter)),
            ]
            for subject, response in refused:
                assert response.status_code == 403, response.text
                entries = of_request(service, log, response)
                assert actions(entries) == ["access.denied"]
                assert entries[0].record.subject == subject
                assert entries[0].record.operation_id == operation_id
            dry_run = client.post(
                f"/users/{ADA}/erasePersonalData",
                json={"dryRun": True},
                headers={"Authorization": f"Bearer {eraser}"},
            )
            assert dry_run.status_code == 403, dry_run.text
            entries = of_request(service, log, dry_run)
            assert actions(entries) == ["access.denied"]
            assert (entries[0].record.subject, entries[0].record.operation_id) == ("eraser", None)
            log.close()
    finally:
        service.stop()


def test_a_403_is_recorded_as_denied_and_a_401_and_a_404_leave_nothing(api, audited, trail):
    readers_only = token_for(audited.data_dir, READ_USERS, subject="reader")
    with audited.client(headers={"Authorization": f"Bearer {readers_only}"}) as reader:
        forbidden = reader.get("/dataPolicyOperations")
    assert forbidden.status_code == 403
    entries = of_request(audited, trail, forbidden)
    assert actions(entries) == ["access.denied"]
    assert entries[0].record.subject == "reader"
    with audited.client(headers={}) as anonymous:
        unauthenticated = anonymous.get("/dataPolicyOperations")
    assert unauthenticated.status_code == 401
    missing = api.get(f"/dataPolicyOperations/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert of_request(audited, trail, unauthenticated) == []
    assert of_request(audited, trail, missing) == []


def test_the_trail_verifies_after_all_of_that(trail):
    result = trail.verify()
    assert result.ok, result.problem
