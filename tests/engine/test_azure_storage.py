"""Azure Blob storage locations (SAS URLs), against a real Azurite started by these tests.

In-process tests drive the target (`AzureTarget`) directly: atomic publication, discarding, an
Azurite that stops mid-upload. Service tests drive a real `datapolicy serve` over HTTP and with
the official Graph SDK: an export end to end, Graph's SAS validation errors, a reused container,
revoked credentials and an outage during an export. No message may carry the SAS.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from azure.storage.blob import AccessPolicy, ExponentialRetry
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import HeadersInspectionHandlerOption
from msgraph import GraphServiceClient
from msgraph.generated.models.data_policy_operation_status import DataPolicyOperationStatus
from msgraph.generated.users.item.export_personal_data.export_personal_data_post_request_body import (  # noqa: E501
    ExportPersonalDataPostRequestBody,
)

from azurite import (
    Azurite,
    blob_names,
    signature,
    uncommitted_blocks,
)
from conftest import Service, start_service, start_worker, wait_for
from conftest import stop_process as stop
from databases import SQLITE, store_database
from datapolicy.config import AzureStorageConfig, StorageConfig
from datapolicy.demo import demo_user_id
from datapolicy.engine.service import ExportService
from datapolicy.engine.targets import StorageError, StorageLocationError, resolve_target
from datapolicy.engine.targets.azure import AzureTarget, azure_target, redact
from datapolicy.engine.verify import verify_package
from datapolicy.engine.worker import ExportContext
from datapolicy.store import OperationStore
from graphclient import graph_client

pytestmark = pytest.mark.operation_store  # starts services on the test store

ADA = demo_user_id(0)
MIB = 1024 * 1024
ALREADY_USED = (
    "Storage destination has already been used for an export. If this is not true, delete "
    "'RequestInfo.json' from the container and try again."
)
# In-process uploads give up quickly, so that an outage test takes seconds.
QUICK = {
    "retry_policy": ExponentialRetry(initial_backoff=0, increment_base=1, retry_total=1),
    "connection_timeout": 2,
    "read_timeout": 10,
}


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite on a free loopback port, shared by the module (skipped if not installed
    locally, a failure under CI=true)."""
    running = Azurite(tmp_path_factory.mktemp("azurite") / "data").start()
    yield running
    running.stop()


@pytest.fixture
def own_azurite(tmp_path: Path) -> Iterator[Azurite]:
    """An Azurite of the test's own, which the test may stop and start again."""
    running = Azurite(tmp_path / "azurite").start()
    yield running
    running.stop()


def config_for(azurite: Azurite) -> AzureStorageConfig:
    return AzureStorageConfig(allowed_hosts=(azurite.host,))


# --- recognising locations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "recognised"),
    [
        ("https://acct.blob.core.windows.net/exports?sv=2024-11-04&sp=w&sig=abc", True),
        ("https://acct.blob.core.windows.net/exports", True),  # then: no SAS
        ("https://acct.queue.core.windows.net/q?sv=1&sig=x", True),  # then: not a blob
        ("http://10.1.2.3:10000/devstoreaccount1/c?sv=2024-11-04&sr=c&sp=w&sig=abc", True),
        ("https://example.com/container", False),
        ("https://example.com/bucket?X-Amz-Signature=abc", False),
        ("s3://bucket/prefix", False),
        ("/srv/exports", False),
    ],
)
def test_azure_locations_are_recognised_and_others_left_to_other_targets(location, recognised):
    assert (azure_target(location, AzureStorageConfig()) is not None) is recognised


def test_an_http_url_with_a_malformed_port_is_refused_saying_so():
    with pytest.raises(StorageLocationError, match="host or port is malformed"):
        azure_target("http://h:notaport/a/b?sv=1&sig=x", AzureStorageConfig())


def test_an_endpoint_that_is_not_allowed_is_refused_naming_it():
    """Not listed: StorageLocationInvalid naming the host; loopback is no exception, and a
    wildcard entry does not reach IP addresses or other ports."""
    sas = "sv=2024-11-04&sr=c&sp=w&sig=c2VjcmV0"
    cases = [
        (
            "https://acct.blob.core.windows.net/c",
            AzureStorageConfig(),
            "acct.blob.core.windows.net",
        ),
        ("http://127.0.0.1:10000/devstoreaccount1/c", AzureStorageConfig(), "127.0.0.1:10000"),
        (
            "http://127.0.0.1:10001/devstoreaccount1/c",
            AzureStorageConfig(allowed_hosts=("127.0.0.1:10000",)),
            "127.0.0.1:10001",
        ),
        (
            "https://acct.blob.core.windows.net:8443/c",
            AzureStorageConfig(allowed_hosts=("*.blob.core.windows.net",)),
            "acct.blob.core.windows.net:8443",
        ),
    ]
    for url, config, host in cases:
        with pytest.raises(StorageLocationError) as raised:
            resolve_target(f"{url}?{sas}", StorageConfig(azure=config)).check()
        assert raised.value.code == "StorageLocationInvalid"
        assert f"'{host}' is not allowed" in raised.value.message
        assert "allowed_hosts" in raised.value.message
        assert "c2VjcmV0" not in raised.value.message
    wildcard = AzureStorageConfig(allowed_hosts=("*.blob.core.windows.net",))
    target = azure_target(f"http://acct.blob.core.windows.net/c?{sas}", wildcard)
    with pytest.raises(StorageLocationError, match="must be reached over https"):
        target.check()


def test_redact_strips_queries_and_sas_fields():
    text = (
        "GET http://127.0.0.1:1/a/b?comp=block&sv=2024&sig=SECRET%3D failed; "
        "sig=SECRET2 se=2026-01-01"
    )
    assert "SECRET" not in redact(text)
    assert "http://127.0.0.1:1/a/b" in redact(text)
    assert "2026-01-01" not in redact(text)


# --- the target, in process -----------------------------------------------------------------------


def upload(target: AzureTarget, operation_id: str, data: bytes, chunk: int = 300_000):
    pending = target.begin(operation_id)
    for start in range(0, len(data), chunk):
        pending.stream.write(data[start : start + chunk])
    return pending


def test_publication_is_atomic_and_the_blob_is_whole(azurite):
    """Blocks are staged as bytes arrive (memory bounded by the block size), nothing is
    visible until publish() commits the block list, and then the whole package is."""
    container = azurite.new_container()
    url = azurite.container_sas_url(container.container_name, "wd")
    target = AzureTarget(url, config_for(azurite), block_size=MIB)
    data = os.urandom(3 * MIB + 12345)
    pending = upload(target, "op", data)
    assert len(uncommitted_blocks(container, "op.zip")) == 3
    assert blob_names(container) == []
    pending.finish({})
    assert len(uncommitted_blocks(container, "op.zip")) == 4
    assert blob_names(container) == []
    where = pending.publish()
    assert where == f"{azurite.endpoint}/{container.container_name}/op.zip"
    assert blob_names(container) == ["op.zip"]
    assert container.download_blob("op.zip").readall() == data
    properties = container.get_blob_client("op.zip").get_blob_properties()
    assert properties.content_settings.content_type == "application/zip"
    assert uncommitted_blocks(container, "op.zip") == []
    assert target.delete("op") is True
    assert target.delete("op") is False
    assert blob_names(container) == []


@pytest.mark.parametrize("stage", ["writing", "finished"])
def test_a_discarded_upload_leaves_its_blocks_to_a_commit_and_discard_partial_drops_them(
    azurite, stage
):
    """discard() before publication: no blob; the attempt's blocks stay, invisible, because
    Azure drops uncommitted blocks only all at once (a commit), which would take a live
    successor's blocks too. Once no attempt can publish, discard_partial drops them."""
    container = azurite.new_container()
    url = azurite.container_sas_url(container.container_name, "wd")
    target = AzureTarget(url, config_for(azurite), block_size=MIB)
    pending = upload(target, "op", os.urandom(2 * MIB + 1))
    if stage == "finished":
        pending.finish({})
    assert uncommitted_blocks(container, "op.zip")
    pending.discard()
    pending.discard()  # safe to repeat
    assert blob_names(container) == []
    assert len(uncommitted_blocks(container, "op.zip")) == (3 if stage == "finished" else 2)
    target.discard_partial("op")
    assert blob_names(container) == []
    assert uncommitted_blocks(container, "op.zip") == []


def test_a_stale_attempt_s_discard_leaves_its_successor_s_blocks(azurite):
    """Two attempts at one blob (the first one's worker stalled past its lease): the stale
    attempt gives up while the successor is still writing, and the successor's commit
    publishes exactly its own bytes."""
    container = azurite.new_container()
    url = azurite.container_sas_url(container.container_name, "wd")
    target = AzureTarget(url, config_for(azurite), block_size=MIB)
    data = os.urandom(2 * MIB + 3)
    successor = upload(target, "op", data)
    stale = upload(target, "op", os.urandom(2 * MIB))
    stale.discard()
    successor.finish({})
    successor.publish()
    assert container.download_blob("op.zip").readall() == data
    assert uncommitted_blocks(container, "op.zip") == []


def test_discard_partial_removes_a_dead_worker_s_blocks_but_never_a_published_package(azurite):
    container = azurite.new_container()
    url = azurite.container_sas_url(container.container_name, "wd")
    target = AzureTarget(url, config_for(azurite), block_size=MIB)
    upload(target, "dead", os.urandom(2 * MIB))  # never finished: the worker "died"
    published = upload(target, "done", b"a package")
    published.finish({})
    published.publish()
    target.discard_partial("dead")
    target.discard_partial("done")
    target.discard_partial("never-started")
    assert uncommitted_blocks(container, "dead.zip") == []
    assert blob_names(container) == ["done.zip"]
    assert container.download_blob("done.zip").readall() == b"a package"


def test_a_retried_upload_commits_only_its_own_blocks(azurite):
    """An attempt that failed half way left blocks; the next attempt's commit drops them."""
    container = azurite.new_container()
    url = azurite.container_sas_url(container.container_name, "w")  # no delete permission
    target = AzureTarget(url, config_for(azurite), block_size=MIB)
    first = upload(target, "op", os.urandom(2 * MIB))
    first.discard()  # cannot delete: the blocks stay, invisible
    assert len(uncommitted_blocks(container, "op.zip")) == 2
    assert blob_names(container) == []
    data = os.urandom(MIB + 7)
    second = upload(target, "op", data)
    second.finish({})
    second.publish()
    assert container.download_blob("op.zip").readall() == data
    assert uncommitted_blocks(container, "op.zip") == []


def test_azurite_stopping_mid_upload_is_a_storage_error_without_the_sas(own_azurite):
    """The storage goes away between two blocks: the write fails with StorageError naming the
    blob and not the SAS; discarding while it is away does not raise; once it is back,
    discard_partial removes what the upload left."""
    container = own_azurite.new_container()
    url = own_azurite.container_sas_url(container.container_name, "wd")
    target = AzureTarget(url, config_for(own_azurite), block_size=MIB, upload_options=QUICK)
    pending = upload(target, "op", os.urandom(2 * MIB))
    assert len(uncommitted_blocks(container, "op.zip")) == 2
    own_azurite.stop()
    with pytest.raises(StorageError) as raised:
        pending.stream.write(os.urandom(MIB))
    message = str(raised.value)
    assert f"{own_azurite.endpoint}/{container.container_name}/op.zip" in message
    assert signature(url) not in message
    assert "?" not in message
    assert "sig=" not in message
    pending.discard()  # logged, not raised: the storage is away
    own_azurite.start()
    assert len(uncommitted_blocks(container, "op.zip")) == 2  # kept across the restart
    target.discard_partial("op")
    assert uncommitted_blocks(container, "op.zip") == []
    assert blob_names(container) == []


def test_revoked_credentials_fail_uploads_with_a_clear_error_without_the_sas(azurite):
    container = azurite.new_container()
    container.set_container_access_policy(
        {"export": AccessPolicy(permission="w", expiry=datetime.now(UTC) + timedelta(hours=1))}
    )
    url = azurite.policy_sas_url(container.container_name, "export")
    target = AzureTarget(url, config_for(azurite), block_size=MIB, upload_options=QUICK)
    target.check()  # accepted
    target.prepare()  # RequestInfo.json written
    container.set_container_access_policy({})  # revoked
    pending = target.begin("op")
    with pytest.raises(StorageError) as raised:
        pending.stream.write(os.urandom(MIB))
    message = str(raised.value)
    assert "HTTP 403" in message
    assert "expired or been revoked" in message
    assert signature(url) not in message
    assert "sig=" not in message
    pending.discard()


# --- through the service --------------------------------------------------------------------------


def _toml(value: object) -> str:
    return json.dumps(str(value))


def write_config(path: Path, azurite: Azurite, *, extra: str = "", **engine: object) -> Path:
    settings = {"max_attempts": 3, "retry_backoff_seconds": 0.2, "poll_seconds": 0.2, **engine}
    path.write_text(
        "[engine]\n"
        + "".join(f"{key} = {value}\n" for key, value in settings.items())
        + f"\n[storage.azure]\nallowed_hosts = [{_toml(azurite.host)}]\n{extra}"
    )
    return path


@pytest.fixture(scope="module")
def azure_service(tmp_path_factory, azurite) -> Iterator[Service]:
    """`datapolicy serve --demo` with Azurite's endpoint allowed."""
    root = tmp_path_factory.mktemp("azure-service")
    config = write_config(root / "datapolicy.toml", azurite)
    running = start_service(root / "data", "--demo", "--config", str(config))
    yield running
    running.stop()


@pytest.fixture
def api(azure_service) -> Iterator[httpx.Client]:
    with azure_service.client(timeout=60) as http:
        yield http


@pytest.fixture
async def graph(azure_service) -> AsyncIterator[GraphServiceClient]:
    async with graph_client(azure_service) as client:
        yield client


def export(api: httpx.Client, location: str, user: str = ADA) -> httpx.Response:
    return api.post(f"/users/{user}/exportPersonalData", json={"storageLocation": location})


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.asyncio(loop_scope="session")
async def test_an_export_to_azurite_completes_through_the_graph_sdk(
    graph, azure_service, azurite, tmp_path
):
    """The official SDK starts the export on a container SAS (write only), reads Location,
    polls until complete; the package is the blob <id>.zip beside RequestInfo.json, and it
    verifies. Deleting the operation deletes the blob."""
    container = azurite.new_container()
    url = azurite.container_sas_url(container.container_name, "wd")
    headers = HeadersInspectionHandlerOption(inspect_response_headers=True)
    await graph.users.by_user_id(ADA).export_personal_data.post(
        ExportPersonalDataPostRequestBody(storage_location=url),
        request_configuration=RequestConfiguration(options=[headers]),
    )
    location = next(iter(headers.response_headers.get("location")))
    operation_id = location.rstrip("/").rsplit("/", 1)[-1]
    assert blob_names(container) == ["RequestInfo.json"]  # written at request time
    info = json.loads(container.download_blob("RequestInfo.json").readall())
    assert "Timestamp" in info
    item = graph.data_policy_operations.by_data_policy_operation_id(operation_id)
    deadline = time.monotonic() + 60
    while (operation := await item.get()).status not in (
        DataPolicyOperationStatus.Complete,
        DataPolicyOperationStatus.Failed,
    ):
        assert time.monotonic() < deadline, operation
        await asyncio.sleep(0.1)
    assert operation.status == DataPolicyOperationStatus.Complete, azure_service.log.read_text()
    assert operation.storage_location == url
    assert blob_names(container) == sorted(["RequestInfo.json", f"{operation_id}.zip"])
    package = tmp_path / "package.zip"
    package.write_bytes(container.download_blob(f"{operation_id}.zip").readall())
    assert verify_package(package) == []
    assert uncommitted_blocks(container, f"{operation_id}.zip") == []
    await item.delete()
    wait_for(
        "the package blob to be deleted",
        lambda: blob_names(container) == ["RequestInfo.json"],
        30,
        azure_service.log.read_text,
    )


GRAPH_ERRORS = {
    "no SAS": (
        lambda a, c: f"{a.endpoint}/{c}",
        "SharedAccessSignatureTokenInvalid",
        "Storage destination does not include SAS credentials.",
    ),
    "a blob, not a container": (
        lambda a, c: a.blob_sas_url(c, "file.zip"),
        "StorageLocationNotAzureBlob",
        "Storage destination must be an azure blob container.",
    ),
    "no container": (
        lambda a, c: a.container_sas_url(c).replace(f"/{c}?", "?"),
        "StorageLocationNotAzureBlob",
        "Storage destination must be an azure blob container.",
    ),
    "an account SAS": (
        lambda a, c: a.account_sas_url(c),
        "StorageLocationNotServiceSAS",
        "Storage destination needs to have a Service SAS, not an Account SAS. See "
        "https://docs.microsoft.com/en-us/azure/storage/common/"
        "storage-dotnet-shared-access-signature-part-1 for more information.",
    ),
    "list permission": (
        lambda a, c: a.container_sas_url(c, "wl"),
        "StorageLocationShouldNotAllowListAccess",
        "Storage destination should not allow list access.",
    ),
    "read permission": (
        lambda a, c: a.container_sas_url(c, "rw"),
        "StorageLocationShouldNotAllowReadAccess",
        "Storage destination should not allow read access.",
    ),
    "create only": (
        lambda a, c: a.container_sas_url(c, "c"),
        "StorageLocationNeedsWriteAddPermissions",
        "Storage destination does not have write/add permissions.",
    ),
    "a wrong signature": (
        lambda a, c: a.container_sas_url(c, "w").replace("sig=", "sig=AAAA"),
        "StorageLocationInvalid",
        "(the SAS is not accepted: its signature is wrong, or it has expired or been revoked)",
    ),
    "an expired SAS": (
        lambda a, c: a.container_sas_url(c, "w", expiry=datetime.now(UTC) - timedelta(hours=1)),
        "StorageLocationInvalid",
        "(the SAS is not accepted: its signature is wrong, or it has expired or been revoked)",
    ),
    "a container that does not exist": (
        lambda a, c: a.container_sas_url(f"{c}x", "w"),
        "StorageLocationInvalid",
        "does not exist",
    ),
}


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.parametrize("case", list(GRAPH_ERRORS))
def test_graph_sas_validation_errors_are_400_with_graph_s_codes(api, azurite, case):
    """Each SAS Graph refuses is a 400 with Graph's code and message (ours for the cases
    Graph lumps together), and nothing is written into the container."""
    make_url, code, message = GRAPH_ERRORS[case]
    container = azurite.new_container()
    url = make_url(azurite, container.container_name)
    response = export(api, url)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if code == "StorageLocationInvalid":
        assert message in error["message"]
    else:
        assert error["message"] == message
    if "sig=" in url:
        assert signature(url) not in response.text
    assert "sig=" not in error["message"]
    assert blob_names(container) == []


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.parametrize(
    ("permission", "code"),
    [
        ("w", None),
        ("wl", "StorageLocationShouldNotAllowListAccess"),
        ("rw", "StorageLocationShouldNotAllowReadAccess"),
        ("c", "StorageLocationNeedsWriteAddPermissions"),
    ],
)
def test_permissions_from_a_stored_access_policy_are_probed_as_graph_does(
    api, azurite, permission, code
):
    """A SAS without `sp` takes its permissions from a stored access policy: the service tries
    listing, writing RequestInfo.json and reading it back, as Graph's backend does."""
    container = azurite.new_container()
    container.set_container_access_policy(
        {"p": AccessPolicy(permission=permission, expiry=datetime.now(UTC) + timedelta(hours=1))}
    )
    response = export(api, azurite.policy_sas_url(container.container_name, "p"))
    if code is None:
        assert response.status_code == 202, response.text
    else:
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == code


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_reused_container_is_storage_location_already_used(api, azurite):
    container = azurite.new_container()
    url = azurite.container_sas_url(container.container_name, "w")
    assert export(api, url).status_code == 202
    again = export(api, url)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "StorageLocationAlreadyUsed"
    assert again.json()["error"]["message"] == ALREADY_USED
    # Another container of the same account is fresh.
    other = azurite.new_container()
    assert export(api, azurite.container_sas_url(other.container_name, "w")).status_code == 202


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_repeated_start_with_the_same_request_id_is_one_export(api, azurite):
    """The idempotency key is looked up before the location is checked: the first start's
    RequestInfo.json must not turn a retried start into StorageLocationAlreadyUsed."""
    container = azurite.new_container()
    url = azurite.container_sas_url(container.container_name, "w")
    headers = {"client-request-id": str(uuid.uuid4())}
    first = api.post(
        f"/users/{ADA}/exportPersonalData", json={"storageLocation": url}, headers=headers
    )
    again = api.post(
        f"/users/{ADA}/exportPersonalData", json={"storageLocation": url}, headers=headers
    )
    assert first.status_code == 202, first.text
    assert again.status_code == 202, again.text
    assert again.headers["location"] == first.headers["location"]


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_a_refused_patch_writes_nothing_into_the_container_it_names(api, azurite):
    """A check changes nothing: a PATCH refused by its precondition (412) leaves the new
    container without RequestInfo.json, so it can still be used."""
    started = export(api, azurite.container_sas_url(azurite.new_container().container_name))
    assert started.status_code == 202, started.text
    other = azurite.new_container()
    refused = api.patch(
        started.headers["location"],
        json={"storageLocation": azurite.container_sas_url(other.container_name)},
        headers={"if-match": 'W/"stale"'},
    )
    assert refused.status_code == 412, refused.text
    assert blob_names(other) == []


def test_a_patch_marks_the_new_container_and_keeps_the_old_one_if_that_is_used(tmp_path, azurite):
    """RequestInfo.json is written when an export is started or moved to a container; moving to
    a container already used is refused and the operation keeps its location."""
    first, second, used = (azurite.new_container() for _ in range(3))
    storage = StorageConfig(azure=config_for(azurite))
    with store_database(SQLITE, tmp_path) as database:
        context = ExportContext(sources=(), directory=None, storage=storage)
        service = ExportService(OperationStore(database), context, None)
        operation, _ = service.start("alice", azurite.container_sas_url(first.container_name))
        service.start("bob", azurite.container_sas_url(used.container_name))
        target = azurite.container_sas_url(second.container_name)
        assert service.update(operation.id, {"storageLocation": target}, lambda _: True)
        assert blob_names(second) == ["RequestInfo.json"]
        with pytest.raises(StorageLocationError) as refused:
            service.update(
                operation.id,
                {"storageLocation": azurite.container_sas_url(used.container_name)},
                lambda _: True,
            )
        assert refused.value.code == "StorageLocationAlreadyUsed"
        assert service.store.get(operation.id).storage_location == target


# --- failures during an export --------------------------------------------------------------------


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_revoked_credentials_fail_the_export_clearly_without_the_sas(tmp_path, azurite):
    """The SAS passes the check at request time, its stored access policy is revoked before a
    worker takes the export: the operation fails at its first attempt (no retry can help),
    saying the SAS is refused, and neither the operation nor the logs carry the signature."""
    config = write_config(tmp_path / "datapolicy.toml", azurite, max_attempts=3)
    api_service = start_service(
        tmp_path / "data", "--demo", "--config", str(config), "--workers", "0"
    )
    worker = None
    try:
        container = azurite.new_container()
        container.set_container_access_policy(
            {"p": AccessPolicy(permission="wd", expiry=datetime.now(UTC) + timedelta(hours=1))}
        )
        url = azurite.policy_sas_url(container.container_name, "p")
        with api_service.client(timeout=30) as http:
            response = export(http, url)
            assert response.status_code == 202, response.text
            operation_url = response.headers["location"]
            container.set_container_access_policy({})  # revoked
            worker = start_worker(tmp_path, api_service.data_dir, config, "--demo")
            logs = lambda: api_service.log.read_text() + (tmp_path / "worker.log").read_text()  # noqa: E731
            final = wait_for(
                "the export to fail",
                lambda: (body := http.get(operation_url).json())["status"] == "failed" and body,
                60,
                logs,
            )
            operation_error = json.dumps(http.get(operation_url).json())
        stop(worker)
        assert blob_names(container) == ["RequestInfo.json"]
        text = logs()
        assert signature(url) not in text
        assert signature(url) not in operation_error.replace(url, "")  # storageLocation aside
        assert final["status"] == "failed"
        assert final["error"]["code"] == "storageError"
        message = final["error"]["message"]
        assert f"{azurite.endpoint}/{container.container_name}/" in message
        assert "HTTP 403" in message
        assert "expired or been revoked" in message
        assert "?" not in message
        assert "gave up" not in message  # failed at once, not after every attempt
    finally:
        if worker is not None:
            stop(worker)
        api_service.stop()


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
def test_azurite_stopping_mid_upload_the_export_retries_and_nothing_partial_remains(
    tmp_path, own_azurite
):
    """A person with tens of MiB of files; Azurite is stopped while blocks are being staged and
    started again: the operation ends complete (its upload retried), the package verifies, and
    the container holds RequestInfo.json and the package only, with no uncommitted block."""
    people = tmp_path / "people"
    (people / "bulky").mkdir(parents=True)
    for index in range(4):
        (people / "bulky" / f"scan-{index}.bin").write_bytes(os.urandom(16 * MIB))
    extra = f"\n[[sources.files]]\nname = 'documents'\npath = {_toml(str(people) + '/{userId}')}\n"
    config = write_config(tmp_path / "datapolicy.toml", own_azurite, extra=extra, workers=1)
    service = start_service(tmp_path / "data", "--config", str(config))
    try:
        container = own_azurite.new_container()
        url = own_azurite.container_sas_url(container.container_name, "wd")
        with service.client(timeout=30) as http:
            response = http.post(
                "/dataPolicyOperations", json={"userId": "bulky", "storageLocation": url}
            )
            assert response.status_code == 201, response.text
            operation_id = response.json()["id"]
            name = f"{operation_id}.zip"
            wait_for(
                "blocks to be staged",
                lambda: uncommitted_blocks(container, name),
                60,
                service.log.read_text,
            )
            own_azurite.stop()
            time.sleep(2)
            own_azurite.start()
            final = wait_for(
                "the export to end",
                lambda: (
                    (body := http.get(f"/dataPolicyOperations/{operation_id}").json())["status"]
                    in ("complete", "failed")
                    and body
                ),
                180,
                service.log.read_text,
            )
        assert final["status"] == "complete", (final, service.log.read_text()[-3000:])
        assert blob_names(container) == sorted(["RequestInfo.json", name])
        assert uncommitted_blocks(container, name) == []
        package = tmp_path / "package.zip"
        package.write_bytes(container.download_blob(name).readall())
        assert verify_package(package) == []
        log = service.log.read_text()
        assert signature(url) not in log
        print(log)  # shown with -rP: how the outage was ridden out
    finally:
        service.stop()
        shutil.rmtree(people, ignore_errors=True)
