"""No storage client follows a redirect (docs/security.md, "Where packages may go").

A real loopback HTTP server stands for an allowed storage endpoint and answers every request
with a redirect to a second loopback listener, which stands for anywhere else. For each target
(Azure Blob, S3, a presigned PUT) and each redirect status, the check at request time and the
upload fail with a message naming the redirect, and the second listener receives nothing: no
connection, so no SAS, no `RequestInfo.json` and no package.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from datapolicy.config import (
    AzureStorageConfig,
    S3PresignedStorageConfig,
    S3StorageConfig,
    StorageConfig,
)
from datapolicy.engine.targets import StorageError, StorageLocationError, resolve_target
from datapolicy.engine.targets.azure import AzureTarget
from listeners import Listener, running_listener
from packages import package_bytes
from presigned import sigv4

REDIRECTS = (301, 302, 303, 307, 308)
SAS = "sv=2023-01-03&sr=c&si=policy&sig=c2VjcmV0"  # permissions from a stored policy: probed
QUICK = {"max_attempts": 1, "connect_timeout": 5, "read_timeout": 5}


class Redirecting(ThreadingHTTPServer):
    """Answers every request (body read first) with `status` and a Location elsewhere."""

    def __init__(self, elsewhere: Listener):
        self.status = 307
        self.requests = 0
        self.location = f"http://127.0.0.1:{elsewhere.port}/stolen"
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # so that `Expect: 100-continue` is answered
    server: Redirecting

    def _redirect(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests += 1
        self.send_response(self.server.status)
        self.send_header("Location", self.server.location)
        self.send_header("x-amz-bucket-region", "eu-west-1")  # tempts botocore's redirector
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _redirect  # noqa: N815 - http.server's names

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Listener]:
    yield from running_listener()


@pytest.fixture(scope="module")
def server(elsewhere: Listener) -> Iterator[Redirecting]:
    running = Redirecting(elsewhere)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture(params=REDIRECTS)
def redirecting(request: pytest.FixtureRequest, server: Redirecting) -> Redirecting:
    server.status = request.param
    server.requests = 0
    return server


def write_package(target: object) -> None:
    upload = target.begin("op")  # type: ignore[attr-defined]
    try:
        data, manifest = package_bytes(b"personal data")
        upload.stream.write(data)
        upload.finish(manifest)
    except BaseException:
        upload.discard()
        raise


def test_azure_does_not_follow_a_redirect(redirecting: Redirecting, elsewhere: Listener):
    """azure-core's RedirectPolicy would follow a 307/308 for a PUT (and 301/302 for a GET) to
    any host and scheme; it is off, so the check and the upload fail saying why."""
    config = AzureStorageConfig(allowed_hosts=(redirecting.host,))
    location = f"http://{redirecting.host}/acct/cont?{SAS}"
    quick = {"retry_total": 0, "connection_timeout": 5, "read_timeout": 5}
    target = AzureTarget(location, config, check_options=quick, upload_options=quick)
    refused = f"HTTP {redirecting.status}.*redirect"
    with pytest.raises(StorageLocationError, match=refused):
        target.check()  # a GET: the SAS's permissions come from a stored policy
    with pytest.raises(StorageLocationError, match=refused):
        target.prepare()  # a PUT of RequestInfo.json
    with pytest.raises(StorageError, match=refused) as failed:
        write_package(target)
    assert failed.value.permanent
    assert redirecting.requests > 0
    assert elsewhere.connections == 0


# A 303 answer to a POST makes botocore fail before reading it (HTTPClientError), leaking the
# socket: not followed either, but left out here, where a leaked socket fails the test.
@pytest.mark.parametrize("redirecting", [301, 302, 307, 308], indirect=True)
def test_s3_does_not_follow_a_redirect(redirecting: Redirecting, elsewhere: Listener):
    """botocore sends each request once (urllib3 with redirects off); its S3 region redirector
    may re-sign for another region but never leaves the configured endpoint."""
    storage = StorageConfig(
        s3=(
            S3StorageConfig(
                name="redirecting",
                endpoint_url=f"http://{redirecting.host}",
                access_key_id="AKID",
                secret_access_key="SECRET",
                buckets=("exports",),
            ),
        )
    )
    target = resolve_target("s3://exports/prefix", storage)
    target.check_options = target.upload_options = QUICK  # type: ignore[attr-defined]
    failure = f"HTTP {redirecting.status}.*redirect"
    with pytest.raises(StorageLocationError, match=failure):
        target.check()
    with pytest.raises((StorageError, StorageLocationError), match=failure):
        write_package(target)
    assert redirecting.requests > 0
    assert elsewhere.connections == 0


def test_a_presigned_put_does_not_follow_a_redirect(
    redirecting: Redirecting, elsewhere: Listener, tmp_path: Path
):
    """The presigned PUT goes through botocore's URLLib3Session, which never follows one."""
    storage = StorageConfig(
        s3_presigned=S3PresignedStorageConfig(allowed_hosts=(redirecting.host,), spool_dir=tmp_path)
    )
    target = resolve_target(sigv4(f"http://{redirecting.host}/exports/k.zip"), storage)
    target.upload_options = QUICK  # type: ignore[attr-defined]
    with pytest.raises(StorageError, match=f"HTTP {redirecting.status}.*redirect") as failed:
        write_package(target)
    assert failed.value.permanent
    assert redirecting.requests > 0
    assert elsewhere.connections == 0
