"""Presigned S3 PUT URLs as storage locations, against a real SeaweedFS S3 server started by these
tests, which verifies every presigned URL's signature and expiry.

Unit tests check what is decided without a request: which URLs are recognised, the 400s and their
reasons, validity at request and write time, the spool file. In-process tests drive the target:
one whole PUT, a refused signature, a connection cut mid-upload, the server killed. Service tests
drive a real `datapolicy serve` over HTTP: an export completes and verifies, DELETE leaves the
object, the 400s write nothing, a tampered signature fails the operation. No message may carry the
signature. Only the service tests are marked `operation_store`: the others use no operation
store, and the PostgreSQL pass leaves them out.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import boto3
import httpx
import pytest
from botocore.config import Config as BotoConfig
from test_s3_storage import wait_for, write_config

from conftest import Service, start_service
from datapolicy.config import (
    Config,
    S3PresignedStorageConfig,
    S3StorageConfig,
    StorageConfig,
    parse_config,
)
from datapolicy.demo import demo_user_id
from datapolicy.engine import build_context
from datapolicy.engine.targets import StorageError, StorageLocationError, resolve_target
from datapolicy.engine.targets.s3_presigned import PresignedS3Target
from datapolicy.engine.verify import verify_package
from packages import package_bytes
from presigned import SIGNATURE, sigv4
from s3server import ADMIN, REGION, SeaweedS3

ADA = demo_user_id(0)
QUICK = {"max_attempts": 3, "connect_timeout": 2, "read_timeout": 10}


def presign(endpoint: str, bucket: str, key: str, expires: int = 3600, **params: Any) -> str:
    """A SigV4 presigned PUT URL, as a caller would make one with boto3."""
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ADMIN[0],
        aws_secret_access_key=ADMIN[1],
        config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    return client.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key, **params}, ExpiresIn=expires
    )


def with_query(url: str, **changes: str | None) -> str:
    """`url` with query fields changed (None removes one)."""
    parts = urlsplit(url)
    fields = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in changes.items():
        name = name.replace("_", "-")
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return urlunsplit(parts._replace(query=urlencode(fields)))


def signature_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]


# --- recognising locations ------------------------------------------------------------------------

STORE = S3StorageConfig(
    name="store",
    endpoint_url="https://s3.example.com",
    access_key_id="AKID",
    secret_access_key="SECRET",
    buckets=("exports",),
)
LOCAL_STORE = STORE.model_copy(update={"endpoint_url": "http://127.0.0.1:9000"})
STORAGE = StorageConfig(
    s3=(STORE, LOCAL_STORE),
    s3_presigned=S3PresignedStorageConfig(
        allowed_hosts=("partner.example.net", "*.s3.eu-west-1.amazonaws.com", "127.0.0.1:8333"),
        spool_dir=Path("/nonexistent/spool"),
    ),
)


@pytest.mark.parametrize(
    ("base", "where"),
    [
        ("https://s3.example.com/exports/a/b.zip", None),  # a configured bucket, path style
        ("https://exports.s3.example.com/b.zip", None),  # ... virtual-hosted
        ("http://127.0.0.1:9000/exports/b.zip", None),  # a configured http endpoint
        ("https://partner.example.net/any-bucket/b.zip", None),  # listed exactly
        ("https://bkt.s3.eu-west-1.amazonaws.com/x/b.zip", None),  # a wildcard
        ("http://127.0.0.1:8333/any/b.zip", None),  # a loopback host listed exactly
        ("https://S3.Example.COM:443/exports/b.zip", "https://s3.example.com:443/exports/b.zip"),
    ],
)
def test_presigned_put_urls_on_allowed_endpoints_are_recognised(base, where):
    target = resolve_target(sigv4(base), STORAGE)
    assert isinstance(target, PresignedS3Target)
    assert target.where == (where or base)
    assert target.spool_dir == Path("/nonexistent/spool")


@pytest.mark.parametrize(
    ("location", "code", "reason"),
    [
        (
            sigv4("https://elsewhere.example.org/b/k.zip"),
            "StorageLocationInvalid",
            "The S3 endpoint 'elsewhere.example.org' is not allowed for presigned URLs",
        ),
        (  # the configured endpoint serves other buckets too: only the listed ones are allowed
            sigv4("https://s3.example.com/someone-elses/k.zip"),
            "StorageLocationInvalid",
            "is not allowed for presigned URLs",
        ),
        (
            sigv4("https://127.0.0.1:9001/exports/k.zip"),
            "StorageLocationInvalid",
            "'127.0.0.1:9001' is not allowed",
        ),
        (
            sigv4("http://s3.example.com/exports/k.zip"),
            "StorageLocationInvalid",
            "must be reached over https",
        ),
        (
            sigv4("http://partner.example.net/b/k.zip"),
            "StorageLocationInvalid",
            "must be reached over https",
        ),
        (
            sigv4("https://partner.example.net/b/k.zip", X_Amz_Signature=""),
            "StorageLocationInvalid",
            "carries no signature (X-Amz-Signature)",
        ),
        (
            sigv4("https://partner.example.net/b/k.zip", X_Amz_Expires="", X_Amz_Date=""),
            "StorageLocationInvalid",
            "lacks X-Amz-Date, X-Amz-Expires",
        ),
        (
            sigv4("https://partner.example.net/b/k.zip", X_Amz_Algorithm="AWS4-HMAC-SHA1"),
            "StorageLocationInvalid",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        ),
        (
            sigv4("https://partner.example.net/b/k.zip", X_Amz_Date="yesterday"),
            "StorageLocationInvalid",
            "X-Amz-Date is not a time",
        ),
        (
            sigv4("https://partner.example.net/b/k.zip", expires=604801),
            "StorageLocationInvalid",
            "from 1 to 604800 (7 days)",
        ),
        (
            sigv4("https://partner.example.net/b/k.zip", X_Amz_SignedHeaders="host;x-amz-acl"),
            "StorageLocationInvalid",
            "(it signs x-amz-acl)",
        ),
        (
            sigv4("https://partner.example.net/b/k.zip", X_Amz_SignedHeaders="content-type"),
            "StorageLocationInvalid",
            "must sign the host header",
        ),
        (
            sigv4("https://partner.example.net/bucket/"),
            "StorageLocationInvalid",
            "must name an object",
        ),
        (
            sigv4("https://partner.example.net/b/k.zip") + f"&X-Amz-Signature={SIGNATURE}",
            "StorageLocationInvalid",
            "repeats X-Amz-Signature",
        ),
        (
            f"https://s3.example.com/exports/k.zip?AWSAccessKeyId=AKID&Signature={SIGNATURE}"
            "&Expires=1999999999",
            "StorageLocationNotSupported",
            "SigV2 presigned S3 URLs",
        ),
        (
            "https://s3.example.com/exports/k.zip",
            "StorageLocationInvalid",
            "names an S3 endpoint but is not presigned",
        ),
    ],
)
def test_unusable_presigned_urls_are_refused_with_a_reason(location, code, reason):
    with pytest.raises(StorageLocationError) as raised:
        resolve_target(location, STORAGE)
    assert raised.value.code == code
    assert reason in raised.value.message
    assert SIGNATURE not in raised.value.message
    assert "X-Amz-Credential" not in raised.value.message


def test_other_http_urls_are_left_to_other_targets_or_refused_as_before():
    with pytest.raises(StorageLocationError, match="must be an Azure Blob container SAS URL"):
        resolve_target("https://example.com/container", STORAGE)


def test_validity_is_checked_at_request_time_and_again_when_the_export_starts(tmp_path):
    """At request time the URL must be valid for 15 more minutes; when the export starts it must
    not have expired (no retry can fix that); a URL dated in the future is a clock problem."""
    signed_at = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    storage = StorageConfig(s3=(STORE,), s3_presigned=S3PresignedStorageConfig(spool_dir=tmp_path))
    target = resolve_target(sigv4("https://s3.example.com/exports/k.zip", signed_at), storage)

    def at(moment: datetime) -> PresignedS3Target:
        target.clock = lambda: moment
        return target

    at(signed_at + timedelta(minutes=45)).check()  # 15 minutes left
    with pytest.raises(StorageLocationError) as raised:
        at(signed_at + timedelta(minutes=50)).check()
    assert raised.value.message == (
        "The presigned S3 URL expires at 2026-11-29T13:00:00Z, in 10 minutes: it must be valid "
        "for at least 15 minutes when the export is requested, so that the package can be made "
        "and sent before it expires."
    )
    at(signed_at + timedelta(minutes=59)).begin("op").discard()  # still valid: go ahead
    for moment in (signed_at + timedelta(hours=1), signed_at + timedelta(days=2)):
        with pytest.raises(StorageLocationError, match=r"expired at 2026-11-29T13:00:00Z"):
            at(moment).check()
        with pytest.raises(StorageLocationError, match="expired"):
            at(moment).begin("op")
    with pytest.raises(StorageLocationError, match="in the future: check the clock"):
        at(signed_at - timedelta(minutes=16)).check()
    assert list(tmp_path.iterdir()) == []


def test_the_spool_directory_defaults_to_the_data_directory_or_is_configured(tmp_path):
    """`spool_dir`, relative to the configuration file; by default `<data_dir>/spool`."""
    default = build_context(Config(), tmp_path / "data").storage.s3_presigned
    assert default.spool_dir == (tmp_path / "data" / "spool").absolute()
    text = "[storage.s3_presigned]\nallowed_hosts = ['h:1']\nspool_dir = 'big-disk/spool'\n"
    config = parse_config(text, tmp_path / "datapolicy.toml")
    configured = build_context(config, tmp_path / "data").storage.s3_presigned
    assert configured.spool_dir == tmp_path.resolve() / "big-disk" / "spool"
    assert configured.allowed_hosts == ("h:1",)


# --- the spool file -------------------------------------------------------------------------------


def offline_target(spool: Path, **options: Any) -> PresignedS3Target:
    storage = StorageConfig(s3=(STORE,), s3_presigned=S3PresignedStorageConfig(spool_dir=spool))
    target = resolve_target(sigv4("https://s3.example.com/exports/k.zip"), storage)
    assert isinstance(target, PresignedS3Target)
    for name, value in options.items():
        setattr(target, name, value)
    return target


def test_the_spool_file_is_owner_only_and_each_attempt_has_its_own(tmp_path):
    """An attempt's spool file is its own: another attempt at the operation (a successor, or a
    stalled worker woken up) leaves it alone; discard_partial, once no attempt can send,
    removes them all; a file untouched for longer than any URL lives is swept."""
    spool = tmp_path / "spool"
    target = offline_target(spool)
    first = target.begin("op")
    first.stream.write(b"first attempt")
    first.stream.flush()
    (path,) = spool.iterdir()
    assert spool.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600
    other = target.begin("other-op")
    second = target.begin("op")  # another attempt: the first one's file stays
    assert sorted(p.name.split(".")[0] for p in spool.iterdir()) == ["op", "op", "other-op"]
    assert path in list(spool.iterdir())
    stale = spool / f"dead-op.{'0' * 32}.spool"  # a worker killed on the last attempt, long ago
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 9 * 86400,) * 2)
    target.discard_partial("other-op")
    target.begin("another-op").discard()
    assert not stale.exists()
    target.discard_partial("op")  # the operation failed: no attempt can send any more
    assert list(spool.iterdir()) == []
    first.discard()
    other.discard()
    second.discard()
    second.discard()  # safe to repeat
    assert list(spool.iterdir()) == []


def test_a_package_past_the_size_limit_fails_as_it_grows_and_leaves_no_file(tmp_path):
    target = offline_target(tmp_path, max_size=100_000)
    upload = target.begin("op")
    for _ in range(9):
        upload.stream.write(os.urandom(10_000))
    with pytest.raises(StorageError) as raised:
        upload.stream.write(os.urandom(20_000))
    assert str(raised.value) == (
        "the package for https://s3.example.com/exports/k.zip is larger than 100000 bytes, the "
        "most one presigned PUT can carry: export to s3://BUCKET/PREFIX (a multipart upload) "
        "instead"
    )
    upload.discard()
    assert list(tmp_path.iterdir()) == []


def test_delete_cannot_remove_the_object_and_says_so(tmp_path, caplog):
    target = offline_target(tmp_path)
    with caplog.at_level("INFO"):
        assert target.delete("op") is False
    assert "https://s3.example.com/exports/k.zip stays" in caplog.text
    assert SIGNATURE not in caplog.text


# --- the target against SeaweedFS -----------------------------------------------------------------


def target_for(url: str, spool: Path, *hosts: str, **options: Any) -> PresignedS3Target:
    host = urlsplit(url).netloc
    storage = StorageConfig(
        s3_presigned=S3PresignedStorageConfig(allowed_hosts=(host, *hosts), spool_dir=spool)
    )
    target = resolve_target(url, storage)
    assert isinstance(target, PresignedS3Target)
    target.upload_options = options or QUICK
    return target


def send(target: PresignedS3Target, payload: bytes, operation_id: str = "op") -> Any:
    """Write a package holding `payload` and send it: the upload and the package's bytes."""
    data, manifest = package_bytes(payload)
    upload = target.begin(operation_id)
    for start in range(0, len(data), 500_000):
        upload.stream.write(data[start : start + 500_000])
    upload.finish(manifest)
    return upload, data


def read(s3: SeaweedS3, bucket: str, key: str) -> bytes:
    return s3.admin().get_object(Bucket=bucket, Key=key)["Body"].read()


def test_the_package_is_sent_whole_in_one_put_and_the_spool_file_goes(s3, tmp_path):
    bucket = s3.new_bucket()
    url = presign(s3.endpoint, bucket, "hr/ada.zip")
    target = target_for(url, tmp_path)
    target.check()  # makes no request: nothing is written
    upload = target.begin("op")
    data, manifest = package_bytes(os.urandom(3 * 1024 * 1024 + 17))
    upload.stream.write(data)
    assert s3.keys(bucket) == []  # spooled, not sent
    assert len(list(tmp_path.iterdir())) == 1
    upload.finish(manifest)
    assert list(tmp_path.iterdir()) == []
    assert upload.publish() == f"{s3.endpoint}/{bucket}/hr/ada.zip"
    assert s3.keys(bucket) == ["hr/ada.zip"]
    assert read(s3, bucket, "hr/ada.zip") == data
    head = s3.admin().head_object(Bucket=bucket, Key="hr/ada.zip")
    assert head["ContentType"] == "application/zip"
    assert s3.multipart_uploads(bucket) == []
    assert target.delete("op") is False
    assert s3.keys(bucket) == ["hr/ada.zip"]  # a PUT URL cannot delete


def test_a_signed_content_type_of_application_zip_is_sent_as_signed(s3, tmp_path):
    bucket = s3.new_bucket()
    url = presign(s3.endpoint, bucket, "k.zip", ContentType="application/zip")
    assert "content-type" in dict(parse_qsl(urlsplit(url).query))["X-Amz-SignedHeaders"]
    upload, sent = send(target_for(url, tmp_path), b"a package")
    upload.publish()
    assert read(s3, bucket, "k.zip") == sent


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("tampered", "HTTP 403 SignatureDoesNotMatch (the signature does not match"),
        ("expired", "HTTP 403 AccessDenied (the URL has expired"),
    ],
)
def test_a_refused_url_is_a_clear_error_without_the_signature_and_leaves_nothing(
    s3, tmp_path, change, reason
):
    """The storage's refusal is not retried (a 403 will not change); the message gives the
    status and S3 code and not the query; the spool file is removed; no object exists."""
    bucket = s3.new_bucket()
    url = presign(s3.endpoint, bucket, "k.zip", expires=1 if change == "expired" else 3600)
    signature = signature_of(url)
    if change == "tampered":
        url = with_query(url, X_Amz_Signature=("1" if signature[0] == "0" else "0") + signature[1:])
    target = target_for(url, tmp_path)
    slept: list[float] = []
    target.sleep = slept.append
    if change == "expired":  # our clock is behind the storage's: we would send it
        target.clock = lambda: datetime.now(UTC) - timedelta(seconds=5)
    upload = target.begin("op")
    data, manifest = package_bytes(os.urandom(100_000))
    upload.stream.write(data)
    if change == "expired":
        time.sleep(1.1)
    with pytest.raises(StorageError) as raised:
        upload.finish(manifest)
    assert slept == []  # not retried
    message = str(raised.value)
    assert message.startswith(f"the storage refused the package for {s3.endpoint}/{bucket}/k.zip")
    assert reason in message
    assert signature not in message
    assert "X-Amz" not in message
    assert list(tmp_path.iterdir()) == []
    assert s3.keys(bucket) == []


def test_an_expired_url_is_not_sent_at_all(s3, tmp_path):
    bucket = s3.new_bucket()
    target = target_for(presign(s3.endpoint, bucket, "k.zip", expires=1), tmp_path)
    target.clock = lambda: target.url.signed_at
    upload = target.begin("op")
    data, manifest = package_bytes(b"a package")
    upload.stream.write(data)
    target.clock = lambda: target.url.expires_at  # the package took too long to make
    with pytest.raises(StorageError, match="expired before the package was ready; nothing was"):
        upload.finish(manifest)
    assert list(tmp_path.iterdir()) == []
    assert s3.keys(bucket) == []


class CuttingProxy:
    """A TCP proxy to `port` that resets its first `cuts` connections after `cut_after` request
    bytes (a connection dropped mid-upload) and passes later ones through."""

    def __init__(self, port: int, cut_after: int, cuts: int = 1):
        self.upstream = port
        self.cut_after = cut_after
        self.cuts = cuts
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            cut = self.cut_after if self.connections <= self.cuts else None
            threading.Thread(target=self._relay, args=(client, cut), daemon=True).start()

    def _relay(self, client: socket.socket, cut: int | None) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream)) as upstream:
            peer = {client: upstream, upstream: client}
            reading = [client, upstream]
            passed = 0
            while reading:
                ready, _, _ = select.select(reading, [], [], 10)
                if not ready:
                    return
                for end in ready:
                    data = end.recv(65536)
                    if not data:
                        reading.remove(end)
                        with contextlib.suppress(OSError):
                            peer[end].shutdown(socket.SHUT_WR)
                        continue
                    if end is client and cut is not None and passed + len(data) > cut:
                        for side in (client, upstream):  # closed with RST, as if dropped
                            side.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                        return
                    passed += len(data) if end is client else 0
                    peer[end].sendall(data)

    def close(self) -> None:
        self.server.close()


_RESET = struct.pack("ii", 1, 0)


def test_a_connection_dropped_mid_upload_is_retried_with_the_whole_file(s3, tmp_path):
    bucket = s3.new_bucket()
    proxy = CuttingProxy(s3.port, cut_after=1024 * 1024)
    try:
        url = presign(f"http://127.0.0.1:{proxy.port}", bucket, "k.zip")
        upload, data = send(target_for(url, tmp_path), os.urandom(3 * 1024 * 1024))
        upload.publish()
        assert proxy.connections == 2
    finally:
        proxy.close()
    assert read(s3, bucket, "k.zip") == data
    assert list(tmp_path.iterdir()) == []


def test_connections_dropped_past_the_retries_fail_cleanly_and_a_new_attempt_starts_afresh(
    s3, tmp_path
):
    """Every try is cut mid-upload: the attempt fails after its retries with StorageError naming
    the object (not the signature), no spool file, and nothing at the key (a PUT cut short
    stores nothing). Once the network is back the next attempt sends the package whole."""
    bucket = s3.new_bucket()
    proxy = CuttingProxy(s3.port, cut_after=256 * 1024, cuts=100)
    try:
        url = presign(f"http://127.0.0.1:{proxy.port}", bucket, "k.zip")
        target = target_for(url, tmp_path)
        with pytest.raises(StorageError) as raised:
            send(target, os.urandom(1024 * 1024))
        assert proxy.connections == QUICK["max_attempts"]
        assert str(raised.value) == (
            f"cannot send the package to http://127.0.0.1:{proxy.port}/{bucket}/k.zip: "
            "ConnectionClosedError"
        )
        assert list(tmp_path.iterdir()) == []
        assert s3.keys(bucket) == []
        proxy.cuts = 0
        upload, sent = send(target, b"next attempt")
        upload.publish()
    finally:
        proxy.close()
    assert read(s3, bucket, "k.zip") == sent


def test_the_server_killed_is_a_clear_error_and_leaves_no_spool_file(own_s3, tmp_path):
    bucket = own_s3.new_bucket()
    url = presign(own_s3.endpoint, bucket, "k.zip")
    spool = tmp_path / "spool"
    upload = target_for(url, spool).begin("op")
    data, manifest = package_bytes(os.urandom(1024 * 1024))
    upload.stream.write(data)
    own_s3.stop(grace=0)  # SIGKILL
    with pytest.raises(StorageError) as raised:
        upload.finish(manifest)
    assert str(raised.value) == (
        f"cannot send the package to {own_s3.endpoint}/{bucket}/k.zip: EndpointConnectionError"
    )
    assert list(spool.iterdir()) == []


# --- through the service --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def buckets(s3) -> tuple[str, str]:
    """A bucket of the service's [[storage.s3]] entry, and one that exists but is not listed."""
    return s3.new_bucket(), s3.new_bucket()


@pytest.fixture(scope="module")
def s3_service(tmp_path_factory, s3, buckets) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("presigned-service")
    config = write_config(root / "datapolicy.toml", s3, buckets[0])
    running = start_service(root / "data", "--demo", "--config", str(config))
    yield running
    running.stop()


@pytest.fixture
def api(s3_service) -> Iterator[httpx.Client]:
    with s3_service.client(timeout=60) as http:
        yield http


def export_to(api: httpx.Client, location: str) -> httpx.Response:
    return api.post(f"/users/{ADA}/exportPersonalData", json={"storageLocation": location})


def run_export(api: httpx.Client, service: Service, location: str) -> dict[str, Any]:
    response = export_to(api, location)
    assert response.status_code == 202, response.text
    operation_url = response.headers["location"]
    return wait_for(
        "the export to end",
        lambda: (
            (body := api.get(operation_url).json())["status"] in ("complete", "failed") and body
        ),
        60,
        service.log.read_text,
    )


def spooled(service: Service) -> list[str]:
    spool = service.data_dir / "spool"
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.operation_store  # the service is on the test store
def test_an_export_to_a_presigned_url_completes_and_delete_leaves_the_object(
    api, s3_service, s3, buckets, tmp_path
):
    """A presigned URL for a bucket of the service's [[storage.s3]] entry: the operation
    completes, the object is the package and verifies, no spool file is left. DELETE removes
    the record; the object stays (a PUT URL cannot delete it)."""
    bucket = buckets[0]
    key = f"e2e-{time.monotonic_ns()}/ada.zip"
    url = presign(s3.endpoint, bucket, key)
    final = run_export(api, s3_service, url)
    assert final["status"] == "complete", (final, s3_service.log.read_text()[-3000:])
    package = tmp_path / "package.zip"
    package.write_bytes(read(s3, bucket, key))
    assert verify_package(package) == []
    assert spooled(s3_service) == []
    assert api.delete(f"/dataPolicyOperations/{final['id']}").status_code == 204
    wait_for(
        "the operation to be gone",
        lambda: api.get(f"/dataPolicyOperations/{final['id']}").status_code == 404,
        30,
        s3_service.log.read_text,
    )
    assert key in s3.keys(bucket)
    assert signature_of(url) not in s3_service.log.read_text()


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.operation_store  # the service is on the test store
@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "The presigned S3 URL expired at "),
        ("too soon", "it must be valid for at least 15 minutes"),
        ("unsigned", "carries no signature (X-Amz-Signature)"),
        ("sigv2", "SigV2 presigned S3 URLs (AWSAccessKeyId, Signature, Expires) are not accepted"),
        ("bucket not listed", "is not allowed for presigned URLs"),
        ("host not allowed", "The S3 endpoint 'localhost:"),
    ],
)
def test_unusable_presigned_urls_are_400_with_a_reason_and_write_nothing(
    api, s3_service, s3, buckets, case, reason
):
    listed, unlisted = buckets
    key = f"refused-{time.monotonic_ns()}.zip"
    url = presign(s3.endpoint, listed, key, expires=60 if case == "too soon" else 3600)
    signature = signature_of(url)
    if case == "expired":
        long_ago = datetime.now(UTC) - timedelta(hours=2)
        url = with_query(url, X_Amz_Date=f"{long_ago:%Y%m%dT%H%M%SZ}")
    elif case == "unsigned":
        url = with_query(url, X_Amz_Signature=None)
    elif case == "sigv2":  # boto3's default signer for a client without signature_version
        url = s3.admin().generate_presigned_url("put_object", Params={"Bucket": listed, "Key": key})
        signature = dict(parse_qsl(urlsplit(url).query))["Signature"]
    elif case == "bucket not listed":
        url = presign(s3.endpoint, unlisted, key)
        signature = signature_of(url)
    elif case == "host not allowed":
        url = presign(s3.endpoint.replace("127.0.0.1", "localhost"), listed, key)
        signature = signature_of(url)
    response = export_to(api, url)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    expected = "StorageLocationNotSupported" if case == "sigv2" else "StorageLocationInvalid"
    assert error["code"] == expected
    assert reason in error["message"]
    assert signature not in response.text
    assert key not in s3.keys(listed) + s3.keys(unlisted)


@pytest.mark.e2e  # a `serve` process, a worker or another program on its port
@pytest.mark.operation_store  # the service is on the test store
def test_a_tampered_signature_fails_the_operation_with_status_and_code(
    api, s3_service, s3, buckets
):
    """The URL passes every check at request time (its signature can only be tried by writing):
    the PUT is refused, and the operation fails naming HTTP 403 and SignatureDoesNotMatch,
    without the signature; no object, no spool file."""
    bucket = buckets[0]
    key = f"tampered-{time.monotonic_ns()}.zip"
    url = presign(s3.endpoint, bucket, key)
    signature = signature_of(url)
    tampered = with_query(url, X_Amz_Signature=signature[::-1])
    final = run_export(api, s3_service, tampered)
    assert final["status"] == "failed", final
    assert final["error"]["code"] == "storageError"
    message = final["error"]["message"]
    assert "HTTP 403 SignatureDoesNotMatch" in message
    assert f"{s3.endpoint}/{bucket}/{key}" in message
    assert signature not in message
    assert signature[::-1] not in message
    assert "X-Amz" not in message
    assert key not in s3.keys(bucket)
    assert spooled(s3_service) == []
    assert signature[::-1] not in s3_service.log.read_text()
