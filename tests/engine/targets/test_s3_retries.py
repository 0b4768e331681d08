"""How S3 requests are retried (engine/targets/s3.py, s3_presigned.py): the S3 client's calls by
botocore's own `standard` retry mode, the presigned PUT by tenacity with the same tries and
backoff; a transient answer is tried again up to `max_attempts` tries in all, a refusal no retry
can change is not.

A loopback HTTP server stands for the storage and answers from a script: each request takes the
next answer, the last one repeats.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from datapolicy.config import S3PresignedStorageConfig, S3StorageConfig, StorageConfig
from datapolicy.engine.targets import StorageError, StorageLocationError, resolve_target
from datapolicy.engine.targets.s3 import S3Target
from datapolicy.engine.targets.s3_presigned import PresignedS3Target
from packages import package_bytes
from presigned import sigv4

INITIATED = (
    b"<InitiateMultipartUploadResult><Bucket>exports</Bucket><Key>k</Key>"
    b"<UploadId>upload-1</UploadId></InitiateMultipartUploadResult>"
)
OK = (200, "")
INTERNAL = (500, "InternalError")
SLOW_DOWN = (503, "SlowDown")
DENIED = (403, "AccessDenied")


class Scripted(ThreadingHTTPServer):
    """Answers each request (body read first) with the next of `answers`: (status, S3 error
    code); the last answer repeats. `requests` counts them."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, str]] = [OK]
        self.requests = 0
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def script(self, *answers: tuple[int, str]) -> None:
        self.answers = list(answers)
        self.requests = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # so that `Expect: 100-continue` is answered
    server: Scripted

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answers = self.server.answers
        status, code = answers[min(self.server.requests, len(answers) - 1)]
        self.server.requests += 1
        body = f"<Error><Code>{code}</Code></Error>".encode() if code else b""
        if status == 200 and self.command == "POST":  # CreateMultipartUpload
            body = INITIATED
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST = do_DELETE = _answer  # noqa: N815 - http.server's names

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def storage() -> Iterator[Scripted]:
    running = Scripted()
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield running
    running.shutdown()
    running.server_close()


def options(max_attempts: int) -> dict[str, Any]:
    return {"max_attempts": max_attempts, "connect_timeout": 5, "read_timeout": 5}


def s3_target(storage: Scripted, **requests: Any) -> S3Target:
    """The target of `s3://exports/p` on the scripted storage (`requests`: the entry's
    `max_attempts`, `connect_timeout`, `read_timeout`)."""
    config = S3StorageConfig(
        name="scripted",
        endpoint_url=f"http://{storage.endpoint}",
        access_key_id="AKID",
        secret_access_key="SECRET",
        buckets=("exports",),
        **requests,
    )
    target = resolve_target("s3://exports/p", StorageConfig(s3=(config,)))
    assert isinstance(target, S3Target)
    return target


def test_the_s3_client_uses_botocores_standard_mode_with_the_tries_configured(storage: Scripted):
    """botocore's `max_attempts` counts retries only; the client is given the tries in all."""
    client = s3_target(storage).client(options(4))
    try:
        assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 4}
    finally:
        client.close()


def test_an_export_s_requests_have_the_tries_and_timeouts_of_its_s3_entry(storage: Scripted):
    """`max_attempts`, `connect_timeout` and `read_timeout` of `[[storage.s3]]` reach each
    request of an export; the check at request time keeps its own quicker ones (2 tries, 5 s,
    20 s), or the entry's where those are smaller."""
    assert s3_target(storage).upload_options == {
        "max_attempts": 12,
        "connect_timeout": 10,
        "read_timeout": 120,
    }
    target = s3_target(storage, max_attempts=3, connect_timeout=1.5, read_timeout=30)
    client = target.client(target.upload_options)
    try:
        assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
        assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (1.5, 30)
    finally:
        client.close()
    storage.script(INTERNAL)
    with pytest.raises(StorageError, match="HTTP 500 InternalError"):
        target.begin("op")
    assert storage.requests == 3
    assert target.check_options == {"max_attempts": 2, "connect_timeout": 1.5, "read_timeout": 20}
    storage.script(INTERNAL)
    with pytest.raises(StorageLocationError, match="HTTP 500 InternalError"):
        s3_target(storage, max_attempts=1).check()
    assert storage.requests == 1


def test_an_s3_request_is_tried_max_attempts_times_then_fails(storage: Scripted):
    target = s3_target(storage)
    target.upload_options = options(4)
    storage.script(INTERNAL)
    with pytest.raises(StorageError, match="HTTP 500 InternalError"):
        target.begin("op")
    assert storage.requests == 4
    target.check_options = options(2)
    storage.script(INTERNAL)
    with pytest.raises(StorageLocationError, match="HTTP 500 InternalError"):
        target.check()
    assert storage.requests == 2


def test_an_s3_request_that_succeeds_on_a_later_try_is_not_a_failure(storage: Scripted):
    target = s3_target(storage)
    target.upload_options = options(4)
    storage.script(INTERNAL, INTERNAL, OK)
    upload = target.begin("op")
    assert (upload.upload_id, storage.requests) == ("upload-1", 3)  # type: ignore[attr-defined]
    upload.discard()


def test_an_s3_refusal_is_not_retried(storage: Scripted):
    target = s3_target(storage)
    target.upload_options = options(4)
    storage.script(DENIED)
    with pytest.raises(StorageLocationError, match="HTTP 403 AccessDenied"):
        target.begin("op")
    assert storage.requests == 1


def presigned_target(storage: Scripted, tmp_path: Path, max_attempts: int) -> PresignedS3Target:
    config = S3PresignedStorageConfig(allowed_hosts=(storage.endpoint,), spool_dir=tmp_path)
    target = resolve_target(
        sigv4(f"http://{storage.endpoint}/exports/k.zip"), StorageConfig(s3_presigned=config)
    )
    assert isinstance(target, PresignedS3Target)
    target.upload_options = options(max_attempts)
    return target


def send(target: PresignedS3Target, slept: list[float]) -> None:
    target.sleep = slept.append
    upload = target.begin("op")
    data, manifest = package_bytes(b"personal data")
    upload.stream.write(data)
    upload.finish(manifest)


@pytest.fixture
def longest_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each random wait drawn at its upper bound, so that the backoff can be compared."""
    monkeypatch.setattr("random.uniform", lambda low, high: high)


@pytest.mark.usefixtures("longest_waits")
def test_a_presigned_put_backs_off_as_botocore_does_and_succeeds_on_a_later_try(
    storage: Scripted, tmp_path: Path
):
    """Waits drawn below 50 ms doubling with each try (1 s after throttling), as botocore's
    standard mode; the whole file is sent again on each try."""
    target = presigned_target(storage, tmp_path, max_attempts=4)
    slept: list[float] = []
    storage.script(INTERNAL, INTERNAL, INTERNAL, OK)
    send(target, slept)
    assert (storage.requests, slept) == (4, [0.05, 0.1, 0.2])
    slept.clear()
    storage.script(SLOW_DOWN, SLOW_DOWN, OK)
    send(target, slept)
    assert (storage.requests, slept) == (3, [1.0, 2.0])


def test_a_presigned_put_is_tried_max_attempts_times_then_fails_for_this_attempt(
    storage: Scripted, tmp_path: Path
):
    """A transient answer on every try fails the attempt, not the operation: the export is
    tried again later (StorageError not permanent)."""
    target = presigned_target(storage, tmp_path, max_attempts=3)
    slept: list[float] = []
    storage.script(INTERNAL)
    with pytest.raises(StorageError, match="HTTP 500 InternalError") as failed:
        send(target, slept)
    assert not failed.value.permanent
    assert (storage.requests, len(slept)) == (3, 2)


def test_a_presigned_put_refused_is_not_retried_and_fails_the_operation(
    storage: Scripted, tmp_path: Path
):
    target = presigned_target(storage, tmp_path, max_attempts=3)
    slept: list[float] = []
    storage.script(DENIED)
    refused = r"HTTP 403 AccessDenied \(the URL has expired"
    with pytest.raises(StorageError, match=refused) as failed:
        send(target, slept)
    assert failed.value.permanent
    assert (storage.requests, slept) == (1, [])
