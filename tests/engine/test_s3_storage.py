"""S3 storage locations (`s3://BUCKET/PREFIX`), against a real SeaweedFS S3 server started by these
tests, which verifies every request's signature.

In-process tests drive the target (`S3Target`) directly: atomic publication, discarding, cleaning
up after a dead worker, a server killed mid-upload, refused credentials. Service tests drive a
real `datapolicy serve` over HTTP and with the official Graph SDK: an export end to end, the 400s,
a wrong secret in the configuration, a cancelled export, and the server killed during an export.
No message may carry the secret. Only the service tests are marked `operation_store`: the
in-process ones use no operation store, and the PostgreSQL pass leaves them out.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import HeadersInspectionHandlerOption
from msgraph import GraphServiceClient
from msgraph.generated.models.data_policy_operation_status import DataPolicyOperationStatus
from msgraph.generated.users.item.export_personal_data.export_personal_data_post_request_body import (  # noqa: E501
    ExportPersonalDataPostRequestBody,
)

from conftest import Service, start_service, start_worker, wait_for
from conftest import stop_process as stop
from datapolicy.config import S3StorageConfig, StorageConfig
from datapolicy.demo import demo_user_id
from datapolicy.engine.targets import StorageError, StorageLocationError, resolve_target
from datapolicy.engine.targets.s3 import S3Target, is_transient, s3_target, sweep_uploads
from datapolicy.engine.verify import verify_package
from graphclient import graph_client
from s3server import ADMIN, READER, WRITER, SeaweedS3

ADA = demo_user_id(0)
MIB = 1024 * 1024
PART = 5 * MIB  # S3's smallest part
QUICK = {"max_attempts": 1, "connect_timeout": 2, "read_timeout": 10}
WRONG_SECRET = "wrong-secret-that-must-never-be-shown-0123"


def config_for(
    s3: SeaweedS3, *buckets: str, credentials: tuple[str, str] = ADMIN, name: str = "seaweed"
) -> S3StorageConfig:
    return S3StorageConfig(
        name=name,
        endpoint_url=s3.endpoint,
        access_key_id=credentials[0],
        secret_access_key=credentials[1],
        buckets=buckets,
    )


def target_for(s3: SeaweedS3, bucket: str, prefix: str = "exports", **options) -> S3Target:
    options.setdefault("part_size", PART)
    return S3Target(bucket, prefix, config_for(s3, bucket), **options)


# --- recognising locations ------------------------------------------------------------------------

CONFIGURED = S3StorageConfig(
    name="store",
    endpoint_url="http://127.0.0.1:9",
    access_key_id="AKID",
    secret_access_key="SECRET",
    buckets=("exports", "other.bucket"),
)


@pytest.mark.parametrize(
    ("location", "bucket", "prefix"),
    [
        ("s3://exports", "exports", ""),
        ("s3://exports/", "exports", ""),
        ("s3://exports/hr/2026", "exports", "hr/2026"),
        ("s3://other.bucket/a/", "other.bucket", "a"),
    ],
)
def test_s3_locations_name_a_configured_bucket_and_prefix(location, bucket, prefix):
    target = s3_target(location, (CONFIGURED,))
    assert isinstance(target, S3Target)
    assert (target.bucket, target.prefix, target.config) == (bucket, prefix, CONFIGURED)
    assert target.key("op") == (f"{prefix}/op.zip" if prefix else "op.zip")


@pytest.mark.parametrize(
    "location",
    ["/srv/exports", "file:///srv", "https://acct.blob.core.windows.net/c?sv=1&sig=x", "ftp://x/y"],
)
def test_other_locations_are_left_to_other_targets(location):
    assert s3_target(location, (CONFIGURED,)) is None


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("s3://unlisted/x", "The S3 bucket 'unlisted' is not configured"),
        ("s3://Bad_Bucket/x", "'Bad_Bucket' is not a valid bucket name"),
        ("s3:///x", "'' is not a valid bucket name"),
        ("s3://exports/a/../b", "may not contain empty, '.' or '..' segments"),
        ("s3://exports/a//b", "may not contain empty"),
        ("s3://AKID:SECRET@exports/x", "without credentials, port, query or fragment"),
        ("s3://exports:9000/x", "without credentials, port, query or fragment"),
        ("s3://exports/x?versionId=1", "without credentials, port, query or fragment"),
    ],
)
def test_unusable_s3_locations_are_refused_with_a_reason(location, reason):
    with pytest.raises(StorageLocationError) as raised:
        resolve_target(location, StorageConfig(s3=(CONFIGURED,)))
    assert raised.value.code == "StorageLocationInvalid"
    assert reason in raised.value.message
    assert "SECRET" not in raised.value.message


@pytest.mark.parametrize(
    ("location", "code", "reason"),
    [
        (
            "https://s3.amazonaws.com/b/k.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID"
            "&X-Amz-Signature=deadbeefsecret",
            "StorageLocationInvalid",
            "'s3.amazonaws.com' is not allowed for presigned URLs",
        ),
        (
            "http://h/b/k.zip?AWSAccessKeyId=AKID&Signature=deadbeefsecret&Expires=1",
            "StorageLocationNotSupported",
            "presign the PUT with SigV4",
        ),
        (  # on a configured endpoint, unsigned
            "http://127.0.0.1:9/exports/k.zip",
            "StorageLocationInvalid",
            "give a SigV4 presigned PUT URL, or s3://BUCKET/PREFIX",
        ),
    ],
)
def test_http_urls_on_s3_endpoints_are_presigned_locations_or_refused(location, code, reason):
    """(Presigned URLs are the other S3 target: see test_s3_presigned.py.)"""
    assert s3_target(location, (CONFIGURED,)) is None
    with pytest.raises(StorageLocationError) as raised:
        resolve_target(location, StorageConfig(s3=(CONFIGURED,)))
    assert raised.value.code == code
    assert reason in raised.value.message
    assert "deadbeefsecret" not in raised.value.message


def test_the_secret_is_not_in_the_configuration_s_repr():
    assert "SECRET" not in repr(CONFIGURED)
    assert "SECRET" not in repr(StorageConfig(s3=(CONFIGURED,)))


# --- the target, in process -----------------------------------------------------------------------


def upload(target: S3Target, operation_id: str, data: bytes, chunk: int = 700_000):
    pending = target.begin(operation_id)
    for start in range(0, len(data), chunk):
        pending.stream.write(data[start : start + chunk])
    return pending


def test_publication_is_atomic_and_the_object_is_whole(s3):
    """Parts are uploaded as bytes arrive (memory bounded by the part size), nothing is visible
    until publish() completes the multipart upload, and then the whole package is."""
    bucket = s3.new_bucket()
    target = target_for(s3, bucket)
    data = os.urandom(2 * PART + 12345)
    pending = upload(target, "op", data)
    assert len(pending.parts) == 2
    assert s3.multipart_uploads(bucket) == ["exports/op.zip"]
    assert s3.keys(bucket) == []
    pending.finish({})
    assert len(pending.parts) == 3
    assert s3.keys(bucket) == []
    assert pending.publish() == f"s3://{bucket}/exports/op.zip"
    assert s3.keys(bucket) == ["exports/op.zip"]
    assert s3.admin().get_object(Bucket=bucket, Key="exports/op.zip")["Body"].read() == data
    assert s3.multipart_uploads(bucket) == []
    assert target.delete("op") is True
    assert target.delete("op") is False
    assert s3.keys(bucket) == []


def test_check_leaves_nothing_and_accepts_write_only_credentials(s3):
    bucket = s3.new_bucket()
    target_for(s3, bucket).check()
    S3Target(bucket, "p", config_for(s3, bucket, credentials=WRITER)).check()
    assert s3.keys(bucket) == []
    assert s3.multipart_uploads(bucket) == []


def test_the_sweep_aborts_dead_attempts_uploads_of_operations_not_running(s3):
    """ListMultipartUploads over each configured bucket: uploads of packages (`<uuid>.zip`,
    under any prefix) older than the lease whose operation is not running are aborted; a
    running operation's upload, and keys that are not packages, are left alone."""
    dead, running = str(uuid.uuid4()), str(uuid.uuid4())
    bucket = s3.new_bucket()
    upload(target_for(s3, bucket, "a/b"), dead, b"x")
    upload(target_for(s3, bucket), running, b"x")
    s3.admin().create_multipart_upload(Bucket=bucket, Key="someone-else.bin")
    config = config_for(s3, bucket)
    assert sweep_uploads(config, timedelta(minutes=5), lambda _: False) == 0  # all fresh
    # Ages are reckoned by the storage's clock (its Date header, in whole seconds): -1 s is
    # "every upload, however new".
    assert sweep_uploads(config, timedelta(seconds=-1), lambda op: op == running) == 1
    assert s3.multipart_uploads(bucket) == [f"exports/{running}.zip", "someone-else.bin"]


@pytest.mark.parametrize("stage", ["writing", "finished"])
def test_a_discarded_upload_leaves_nothing(s3, stage):
    bucket = s3.new_bucket()
    pending = upload(target_for(s3, bucket), "op", os.urandom(PART + 1))
    if stage == "finished":
        pending.finish({})
    assert s3.multipart_uploads(bucket) == ["exports/op.zip"]
    pending.discard()
    pending.discard()  # safe to repeat
    assert s3.keys(bucket) == []
    assert s3.multipart_uploads(bucket) == []


def test_a_retry_leaves_other_attempts_uploads_and_discard_partial_removes_them(s3):
    """Each attempt has an upload id of its own: a retry neither aborts nor completes the
    earlier attempt's upload (its worker may only be stalled, and must not abort a live
    successor's upload when it wakes up); discard_partial removes what dead attempts left,
    never a published package."""
    bucket = s3.new_bucket()
    target = target_for(s3, bucket)
    upload(target, "dead", os.urandom(PART))  # never finished: the worker "died"
    upload(target, "retried", os.urandom(PART))  # so did this one
    published = upload(target, "done", b"a package")
    published.finish({})
    published.publish()
    assert s3.multipart_uploads(bucket) == ["exports/dead.zip", "exports/retried.zip"]
    again = upload(target, "retried", b"second attempt")
    assert s3.multipart_uploads(bucket) == [
        "exports/dead.zip",
        "exports/retried.zip",
        "exports/retried.zip",
    ]
    again.finish({})
    again.publish()
    assert s3.multipart_uploads(bucket) == ["exports/dead.zip", "exports/retried.zip"]
    target.discard_partial("retried")
    target.discard_partial("dead")
    target.discard_partial("done")
    target.discard_partial("never-started")
    assert s3.multipart_uploads(bucket) == []
    assert s3.keys(bucket) == ["exports/done.zip", "exports/retried.zip"]
    read = s3.admin().get_object
    assert read(Bucket=bucket, Key="exports/done.zip")["Body"].read() == b"a package"
    assert read(Bucket=bucket, Key="exports/retried.zip")["Body"].read() == b"second attempt"


def test_the_server_killed_mid_upload_is_a_storage_error_and_cleanup_works_after(own_s3):
    """The server dies between two parts: the write fails with StorageError naming the object
    and not the secret; discarding while it is away does not raise; once it is back,
    discard_partial removes what the upload left."""
    bucket = own_s3.new_bucket()
    target = target_for(own_s3, bucket, upload_options=QUICK)
    pending = upload(target, "op", os.urandom(PART))
    own_s3.stop(grace=0)  # SIGKILL
    with pytest.raises(StorageError) as raised:
        pending.stream.write(os.urandom(PART))
    message = str(raised.value)
    assert f"s3://{bucket}/exports/op.zip" in message
    assert ADMIN[1] not in message
    pending.discard()  # logged, not raised: the storage is away
    own_s3.start()
    assert own_s3.multipart_uploads(bucket) == ["exports/op.zip"]  # kept across the restart
    target.discard_partial("op")
    assert own_s3.multipart_uploads(bucket) == []
    assert own_s3.keys(bucket) == []


@pytest.mark.parametrize(
    ("credentials", "reason"),
    [
        ((ADMIN[0], WRONG_SECRET), "HTTP 403 SignatureDoesNotMatch"),
        (("AKIDUNKNOWN000000000", WRONG_SECRET), "HTTP 403 InvalidAccessKeyId"),
    ],
)
def test_refused_credentials_are_clear_and_never_show_the_secret(s3, credentials, reason):
    bucket = s3.new_bucket()
    target = S3Target(bucket, "p", config_for(s3, bucket, credentials=credentials))
    with pytest.raises(StorageLocationError) as raised:
        target.check()
    message = raised.value.message
    assert reason in message
    assert "are not accepted" in message
    assert "[[storage.s3]] 'seaweed'" in message
    assert WRONG_SECRET not in message
    with pytest.raises(StorageLocationError) as raised:  # at write time: no retry can fix it
        target.begin("op")
    assert reason in raised.value.message
    assert WRONG_SECRET not in raised.value.message


def test_credentials_without_write_permission_and_a_missing_bucket_are_clear(s3):
    bucket = s3.new_bucket()
    reader = S3Target(bucket, "p", config_for(s3, bucket, credentials=READER))
    with pytest.raises(StorageLocationError, match="HTTP 403 AccessDenied") as raised:
        reader.check()
    assert f"do not permit writing to the bucket '{bucket}'" in raised.value.message
    missing = S3Target("nosuchbucket", "p", config_for(s3, "nosuchbucket"))
    with pytest.raises(StorageLocationError) as raised:
        missing.check()
    assert "HTTP 404 NoSuchBucket" in raised.value.message
    assert "the bucket 'nosuchbucket' does not exist" in raised.value.message


# --- through the service --------------------------------------------------------------------------


def _toml(value: object) -> str:
    return json.dumps(str(value))


def write_config(
    path: Path,
    s3: SeaweedS3,
    *buckets: str,
    secret: str = ADMIN[1],
    extra: str = "",
    requests: str = "",
    **engine: object,
) -> Path:
    """The service's configuration: [engine] settings as keywords, the [[storage.s3]] entry
    for `s3` and `buckets` (`requests`: more of its keys, as TOML lines), then `extra`."""
    settings = {"max_attempts": 3, "retry_backoff_seconds": 0.2, "poll_seconds": 0.2, **engine}
    path.write_text(
        "[engine]\n"
        + "".join(f"{key} = {value}\n" for key, value in settings.items())
        + "\n[[storage.s3]]\n"
        + "name = 'seaweed'\n"
        + f"endpoint_url = {_toml(s3.endpoint)}\n"
        + f"access_key_id = {_toml(ADMIN[0])}\n"
        + f"secret_access_key = {_toml(secret)}\n"
        + f"buckets = [{', '.join(_toml(b) for b in buckets)}]\n"
        + requests
        + extra
    )
    return path


@pytest.fixture(scope="module")
def buckets(s3) -> tuple[str, str]:
    """A bucket the service may write to, and one it is configured for that does not exist."""
    return s3.new_bucket(), "configured-but-missing"


@pytest.fixture(scope="module")
def s3_service(tmp_path_factory, s3, buckets) -> Iterator[Service]:
    """`datapolicy serve --demo` with the SeaweedFS endpoint configured."""
    root = tmp_path_factory.mktemp("s3-service")
    config = write_config(root / "datapolicy.toml", s3, *buckets)
    running = start_service(root / "data", "--demo", "--config", str(config))
    yield running
    running.stop()


@pytest.fixture
def api(s3_service) -> Iterator[httpx.Client]:
    with s3_service.client(timeout=60) as http:
        yield http


@pytest.fixture
async def graph(s3_service) -> AsyncIterator[GraphServiceClient]:
    async with graph_client(s3_service) as client:
        yield client


def export(api: httpx.Client, location: str, user: str = ADA) -> httpx.Response:
    return api.post(f"/users/{user}/exportPersonalData", json={"storageLocation": location})


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.operation_store  # the service is on the test store
@pytest.mark.asyncio(loop_scope="session")
async def test_an_export_to_s3_completes_through_the_graph_sdk(
    graph, s3_service, s3, buckets, tmp_path
):
    """The official SDK starts the export on s3://BUCKET/PREFIX, reads Location, polls until
    complete; the package is the object PREFIX/<id>.zip, alone, and it verifies; no multipart
    upload is left. Deleting the operation deletes the object."""
    bucket = buckets[0]
    prefix = f"e2e-{time.monotonic_ns()}"
    location_url = f"s3://{bucket}/{prefix}"
    headers = HeadersInspectionHandlerOption(inspect_response_headers=True)
    await graph.users.by_user_id(ADA).export_personal_data.post(
        ExportPersonalDataPostRequestBody(storage_location=location_url),
        request_configuration=RequestConfiguration(options=[headers]),
    )
    location = next(iter(headers.response_headers.get("location")))
    operation_id = location.rstrip("/").rsplit("/", 1)[-1]
    key = f"{prefix}/{operation_id}.zip"
    item = graph.data_policy_operations.by_data_policy_operation_id(operation_id)
    deadline = time.monotonic() + 60
    ended = (DataPolicyOperationStatus.Complete, DataPolicyOperationStatus.Failed)
    while True:
        published = key in s3.keys(bucket)  # looked at before the status
        operation = await item.get()
        if published:  # the object appears only as the operation completes (same lock)
            for _ in range(20):
                if operation.status == DataPolicyOperationStatus.Complete:
                    break
                await asyncio.sleep(0.1)
                operation = await item.get()
            assert operation.status == DataPolicyOperationStatus.Complete, operation
        if operation.status in ended:
            break
        assert time.monotonic() < deadline, operation
        await asyncio.sleep(0.05)
    assert operation.status == DataPolicyOperationStatus.Complete, s3_service.log.read_text()
    assert operation.storage_location == location_url
    assert [k for k in s3.keys(bucket) if k.startswith(f"{prefix}/")] == [key]
    package = tmp_path / "package.zip"
    package.write_bytes(s3.admin().get_object(Bucket=bucket, Key=key)["Body"].read())
    assert verify_package(package) == []
    assert [k for k in s3.multipart_uploads(bucket) if k.startswith(f"{prefix}/")] == []
    await item.delete()
    wait_for(
        "the package object to be deleted",
        lambda: key not in s3.keys(bucket),
        30,
        s3_service.log.read_text,
    )


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.operation_store  # the service is on the test store
@pytest.mark.parametrize(
    ("location", "code", "reason"),
    [
        ("s3://not-configured/x", "StorageLocationInvalid", "'not-configured' is not configured"),
        ("s3://Bad_Bucket/x", "StorageLocationInvalid", "is not a valid bucket name"),
        ("s3://{bucket}/a/../b", "StorageLocationInvalid", "'..' segments"),
        ("s3://{bucket}/x?y=1", "StorageLocationInvalid", "without credentials, port, query"),
        ("s3://configured-but-missing/x", "StorageLocationInvalid", "HTTP 404 NoSuchBucket"),
        (
            "{endpoint}/{bucket}/k.zip?X-Amz-Credential=A&X-Amz-Signature=sigsecret",
            "StorageLocationInvalid",
            "The presigned S3 URL lacks X-Amz-Algorithm, X-Amz-Date",
        ),
    ],
)
def test_unusable_s3_locations_are_400_with_a_reason(api, s3, buckets, location, code, reason):
    location = location.format(bucket=buckets[0], endpoint=s3.endpoint)
    response = export(api, location)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert reason in error["message"]
    assert "sigsecret" not in response.text
    assert ADMIN[1] not in response.text


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.operation_store  # the service is on the test store
def test_a_wrong_secret_in_the_configuration_is_a_clear_400_without_the_secret(tmp_path, s3):
    bucket = s3.new_bucket()
    config = write_config(tmp_path / "datapolicy.toml", s3, bucket, secret=WRONG_SECRET)
    service = start_service(tmp_path / "data", "--demo", "--config", str(config))
    try:
        with service.client(timeout=30) as http:
            response = export(http, f"s3://{bucket}/p")
        assert response.status_code == 400, response.text
        message = response.json()["error"]["message"]
        assert "HTTP 403 SignatureDoesNotMatch" in message
        assert "[[storage.s3]] 'seaweed' are not accepted" in message
        assert WRONG_SECRET not in response.text
        assert WRONG_SECRET not in service.log.read_text()
    finally:
        service.stop()


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.operation_store  # the service is on the test store
def test_revoked_credentials_fail_the_export_clearly_without_the_secret(tmp_path, s3):
    """The location passes the check at request time; the worker's secret is wrong (revoked):
    the operation fails at once with a clear reason, and neither the operation nor the logs
    carry the secret; nothing is written."""
    bucket = s3.new_bucket()
    good = write_config(tmp_path / "api.toml", s3, bucket)
    revoked = write_config(tmp_path / "worker.toml", s3, bucket, secret=WRONG_SECRET)
    api_service = start_service(
        tmp_path / "data", "--demo", "--config", str(good), "--workers", "0"
    )
    worker = None
    try:
        with api_service.client(timeout=30) as http:
            response = export(http, f"s3://{bucket}/p")
            assert response.status_code == 202, response.text
            operation_url = response.headers["location"]
            worker = start_worker(tmp_path, api_service.data_dir, revoked, "--demo")
            logs = lambda: api_service.log.read_text() + (tmp_path / "worker.log").read_text()  # noqa: E731
            final = wait_for(
                "the export to fail",
                lambda: (body := http.get(operation_url).json())["status"] == "failed" and body,
                60,
                logs,
            )
        stop(worker)
        text = json.dumps(final)
        assert "HTTP 403 SignatureDoesNotMatch" in text
        assert "are not accepted" in text
        assert WRONG_SECRET not in text
        assert WRONG_SECRET not in logs()
        assert s3.keys(bucket) == []
        assert s3.multipart_uploads(bucket) == []
    finally:
        if worker is not None:
            stop(worker)
        api_service.stop()


def bulky_files(tmp_path: Path, count: int = 4) -> str:
    people = tmp_path / "people"
    (people / "bulky").mkdir(parents=True)
    for index in range(count):
        (people / "bulky" / f"scan-{index}.bin").write_bytes(os.urandom(16 * MIB))
    return f"\n[[sources.files]]\nname = 'documents'\npath = {_toml(str(people) + '/{userId}')}\n"


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.operation_store  # the service is on the test store
def test_a_cancelled_export_leaves_no_object_and_no_multipart_upload(tmp_path, s3):
    bucket = s3.new_bucket()
    extra = bulky_files(tmp_path, 6)
    config = write_config(tmp_path / "datapolicy.toml", s3, bucket, extra=extra, workers=1)
    service = start_service(tmp_path / "data", "--config", str(config))
    try:
        with service.client(timeout=30) as http:
            response = http.post(
                "/dataPolicyOperations",
                json={"userId": "bulky", "storageLocation": f"s3://{bucket}/p"},
            )
            assert response.status_code == 201, response.text
            operation_id = response.json()["id"]
            wait_for(
                "a multipart upload to start",
                lambda: s3.multipart_uploads(bucket),
                60,
                service.log.read_text,
            )
            assert http.delete(f"/dataPolicyOperations/{operation_id}").status_code in (202, 204)
            wait_for(
                "the operation to be gone",
                lambda: http.get(f"/dataPolicyOperations/{operation_id}").status_code == 404,
                60,
                service.log.read_text,
            )
        wait_for(
            "the multipart upload to be aborted",
            lambda: s3.multipart_uploads(bucket) == [],
            30,
            service.log.read_text,
        )
        assert s3.keys(bucket) == []
    finally:
        service.stop()
        shutil.rmtree(tmp_path / "people", ignore_errors=True)


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.operation_store  # the service is on the test store
def test_the_server_killed_mid_upload_the_export_retries_and_nothing_partial_remains(
    tmp_path, own_s3
):
    """A person with tens of MiB of files; SeaweedFS is killed (SIGKILL) while parts are being
    uploaded and started again: the operation ends complete, the package verifies, and the
    bucket holds the package only, with no unfinished multipart upload."""
    bucket = own_s3.new_bucket()
    extra = bulky_files(tmp_path)
    config = write_config(tmp_path / "datapolicy.toml", own_s3, bucket, extra=extra, workers=1)
    service = start_service(tmp_path / "data", "--config", str(config))
    try:
        with service.client(timeout=30) as http:
            response = http.post(
                "/dataPolicyOperations",
                json={"userId": "bulky", "storageLocation": f"s3://{bucket}/p"},
            )
            assert response.status_code == 201, response.text
            operation_id = response.json()["id"]
            key = f"p/{operation_id}.zip"
            wait_for(
                "a multipart upload to start",
                lambda: own_s3.multipart_uploads(bucket),
                60,
                service.log.read_text,
            )
            own_s3.stop(grace=0)
            time.sleep(1)
            own_s3.start()
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
        assert own_s3.keys(bucket) == [key]
        assert own_s3.multipart_uploads(bucket) == []
        package = tmp_path / "package.zip"
        package.write_bytes(own_s3.admin().get_object(Bucket=bucket, Key=key)["Body"].read())
        assert verify_package(package) == []
        assert ADMIN[1] not in service.log.read_text()
    finally:
        service.stop()
        shutil.rmtree(tmp_path / "people", ignore_errors=True)


def test_describe_gives_status_and_code_and_strips_queries():
    from botocore.exceptions import ClientError, EndpointConnectionError

    from datapolicy.engine.targets.s3 import describe

    refused = ClientError(
        {
            "Error": {"Code": "AccessDenied", "Message": "no"},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        },
        "UploadPart",
    )
    assert describe(refused) == "HTTP 403 AccessDenied"
    assert describe(EndpointConnectionError(endpoint_url="http://h:1/b?x=1")) == (
        "EndpointConnectionError"
    )
    leaked = ValueError("PUT http://h/b/k.zip?X-Amz-Signature=SECRET&X-Amz-Credential=AKID failed")
    assert "SECRET" not in describe(leaked)
    assert "http://h/b/k.zip" in describe(leaked)


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.operation_store  # the service is on the test store
@pytest.mark.slow
def test_the_server_down_until_the_export_fails_leaves_nothing_visible(tmp_path, own_s3):
    """SeaweedFS is killed mid-upload and stays down past the retries: the operation fails with
    a storage error naming the object (not the secret), and nothing is at the final key. The
    multipart upload the failed attempt could not abort is invisible; once the server is back,
    discard_partial for the operation removes it.

    (Deleting a failed operation removes its row at once without a cleanup job, see
    OperationStore.delete, so today only a bucket lifecycle rule removes such a leftover.)"""
    bucket = own_s3.new_bucket()
    extra = bulky_files(tmp_path)
    config = write_config(
        tmp_path / "datapolicy.toml",
        own_s3,
        bucket,
        extra=extra,
        requests="max_attempts = 2\n",  # each request tried again once, not for half a minute
        workers=1,
        max_attempts=1,
    )
    service = start_service(tmp_path / "data", "--config", str(config))
    try:
        with service.client(timeout=30) as http:
            response = http.post(
                "/dataPolicyOperations",
                json={"userId": "bulky", "storageLocation": f"s3://{bucket}/p"},
            )
            assert response.status_code == 201, response.text
            operation_url = f"/dataPolicyOperations/{response.json()['id']}"
            wait_for(
                "a multipart upload to start",
                lambda: own_s3.multipart_uploads(bucket),
                60,
                service.log.read_text,
            )
            own_s3.stop(grace=0)
            final = wait_for(
                "the export to fail",
                lambda: (body := http.get(operation_url).json())["status"] == "failed" and body,
                120,
                service.log.read_text,
            )
            # The operation fails before its partial uploads are looked for: restarting the server
            # before that search has given up would let it abort the upload after all.
            wait_for(
                "the search for partial uploads to give up",
                lambda: (
                    f"could not remove the partial packages of {final['id']}"
                    in service.log.read_text()
                ),
                120,
                service.log.read_text,
            )
            own_s3.start()
            assert own_s3.multipart_uploads(bucket) != []  # the abort could not reach it
            assert own_s3.keys(bucket) == []
        S3Target(bucket, "p", config_for(own_s3, bucket)).discard_partial(final["id"])
        assert own_s3.multipart_uploads(bucket) == []
        assert own_s3.keys(bucket) == []
        text = json.dumps(final)
        assert "storageError" in text
        assert f"s3://{bucket}/p/" in text
        assert "EndpointConnectionError" in text
        assert ADMIN[1] not in text + service.log.read_text()
    finally:
        service.stop()
        shutil.rmtree(tmp_path / "people", ignore_errors=True)


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (507, "XMinioStorageFull", False),  # MinIO below its free-space threshold
        (507, "InsufficientStorage", False),
        (403, "QuotaExceeded", False),  # Ceph RGW: a user or bucket quota
        (503, "SlowDown", True),
        (500, "InternalError", True),
    ],
)
def test_a_storage_without_room_is_not_retried(status: int, code: str, transient: bool):
    """No room is not an outage: neither the request's retries nor the export's would pass."""
    refusal = ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "UploadPart"
    )
    assert is_transient(refusal) is transient
