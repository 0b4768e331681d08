"""The S3 target: `s3://BUCKET/PREFIX` on an S3-compatible endpoint configured in `[[storage.s3]]`.

The endpoint, region and credentials come from the configuration entry whose `buckets` lists
BUCKET, never from the request; a bucket no entry lists is refused (400). The package is written
to `PREFIX/<operationId>.zip` (or `<operationId>.zip` without a prefix).

Upload: a multipart upload, streamed in parts as the package is made (memory: one part, 8 MiB,
growing by 8 MiB every 1,000 parts so that the 10,000-part limit is reached only past ~400 GiB).
`finish()` uploads the last part; `publish()` completes the multipart upload, so the object
appears whole at its final key or not at all. Each attempt has an upload id of its own and
completes or aborts only that one: an attempt whose worker stalled past its lease and woke up
cannot abort its successor's upload. `discard()` aborts the attempt's upload; what killed
workers left (ListMultipartUploads) is aborted by `discard_partial()` once the operation fails or
is deleted, and by `sweep_uploads` (an idle worker's sweep of each configured bucket) once it is
older than the lease and its operation is not running, so nothing partial is left behind.

`check()` (at request time) starts and aborts a multipart upload of a probe key under the
prefix: it proves that the bucket exists and that the credentials may write, and leaves nothing.

Transient failures (5xx, throttling, dropped connections, timeouts) are retried by botocore's
own `standard` retry mode: up to `max_attempts` tries of each request, after a random wait of
up to 50 ms doubling with each try (from 1 s for throttling), each wait at most 20 s. An
export's requests take their tries and timeouts from the `[[storage.s3]]` entry
(`request_options`); by default 12 tries ride out an outage of about half a minute on average
before the attempt fails (the worker then retries the export with its own backoff,
engine/retrypolicy.py). A check at request time gives up sooner (`CHECK_OPTIONS`, or the
entry's own when they are smaller). botocore also keeps a retry quota per client, so a client that
keeps failing stops retrying early. What is left reaches the operation as StorageError naming
the object, the HTTP status and the S3 error code. Messages never carry credentials or query
strings.

Presigned PUT URLs, for callers that can hand over only a URL, are the other S3 target
(`s3_presigned`): one request for one object, so spooled to disk and sent whole, without
multipart upload or deletion. It reuses this module's attempts, error descriptions and which
failures are transient.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import IO, Any, cast
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from datapolicy.config import S3StorageConfig
from datapolicy.engine.targets.base import (
    ChunkedStream,
    StorageError,
    StorageLocationError,
    Target,
    Upload,
)
from datapolicy.redact import redact

logger = logging.getLogger(__name__)

PACKAGE_SUFFIX = ".zip"
PROBE_PREFIX = ".datapolicy-check-"
PART_SIZE = 8 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PARTS = 10_000
PARTS_PER_STEP = 1_000  # the part size grows by PART_SIZE every this many parts

# Tries of each request (the first included) and its timeouts: see the module's docstring.
_OPTIONS = ("max_attempts", "connect_timeout", "read_timeout")
# A `[[storage.s3]]` entry's defaults: also a presigned PUT's, which has no entry.
UPLOAD_OPTIONS: dict[str, Any] = {
    name: S3StorageConfig.model_fields[name].default for name in _OPTIONS
}
CHECK_OPTIONS: dict[str, Any] = {"max_attempts": 2, "connect_timeout": 5, "read_timeout": 20}
# Completing the upload runs under the store's write lock: few tries, and quick ones.
PUBLISH_MAX_ATTEMPTS = 3
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
}

# Bucket names as S3 allows them (3-63 lowercase letters, digits, dots and hyphens).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_AUTHENTICATION_FAILURES = (
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


def _status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def answer(status: int | None, code: str) -> str:
    """An S3 answer for messages: `HTTP 403 AccessDenied`."""
    return f"HTTP {status or '?'} {code}".strip()


def describe(exc: BaseException) -> str:
    """A short reason for a storage failure: HTTP status and S3 error code, no secrets."""
    if isinstance(exc, ClientError):
        return answer(_status(exc), _code(exc))
    if isinstance(exc, BotoCoreError):
        return type(exc).__name__  # messages name the endpoint, nothing secret, but keep it short
    return redact(f"{type(exc).__name__}: {exc}")


_SESSION_LOCK = threading.Lock()
_SESSIONS: list[boto3.session.Session] = []


def _session() -> boto3.session.Session:
    if not _SESSIONS:
        _SESSIONS.append(boto3.session.Session())
    return _SESSIONS[0]


# A storage without room (507 Insufficient Storage, MinIO's XMinioStorageFull; Ceph's 403
# QuotaExceeded): the retries of a minute or the export's retries would be refused the same way.
_NO_ROOM_CODES = {"QuotaExceeded", "XMinioStorageFull"}


# Connection failures (refused, dropped, timed out) that another try may get past, as botocore's
# standard mode counts them.
TRANSIENT_EXCEPTIONS = (BotoConnectionError, HTTPClientError)


def request_options(config: S3StorageConfig) -> dict[str, Any]:
    """The tries and timeouts of an export's requests, as the `[[storage.s3]]` entry sets them."""
    return {name: getattr(config, name) for name in _OPTIONS}


def transient(status: int, code: str) -> bool:
    """Whether another try of a request the storage answered so may succeed."""
    if status == 507 or code in _NO_ROOM_CODES:
        return False
    return status >= 500 or status in (408, 429) or code in _TRANSIENT_CODES


def is_transient(exc: BaseException) -> bool:
    """Whether another try of the same request may succeed: after botocore's tries, whether
    the failure is worth another attempt of the export, or fails it at once."""
    if isinstance(exc, ClientError):
        return transient(_status(exc) or 0, _code(exc))
    return isinstance(exc, TRANSIENT_EXCEPTIONS)


class S3Target(Target):
    """A bucket and key prefix on a configured S3-compatible endpoint."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        config: S3StorageConfig,
        *,
        part_size: int = PART_SIZE,
        upload_options: dict[str, Any] | None = None,
        check_options: dict[str, Any] | None = None,
    ):
        self.bucket = bucket
        self.prefix = prefix
        self.config = config
        self.part_size = part_size
        self.upload_options = request_options(config) if upload_options is None else upload_options
        if check_options is None:  # never slower than the entry's own requests
            check_options = {
                name: min(CHECK_OPTIONS[name], self.upload_options[name]) for name in _OPTIONS
            }
        self.check_options = check_options

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, operation_id: str) -> str:
        name = f"{operation_id}{PACKAGE_SUFFIX}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def client(self, options: dict[str, Any]) -> Any:
        with _SESSION_LOCK:  # sessions are not thread-safe; one keeps the loaded S3 model
            client = _session().client(
                "s3",
                endpoint_url=self.config.endpoint_url,
                region_name=self.config.region,
                aws_access_key_id=self.config.access_key_id,
                aws_secret_access_key=self.config.secret_access_key,
                config=Config(
                    s3={"addressing_style": "path"},
                    # (botocore's `max_attempts` would count the retries only, not the first try)
                    retries={"mode": "standard", "total_max_attempts": options["max_attempts"]},
                    connect_timeout=options["connect_timeout"],
                    read_timeout=options["read_timeout"],
                    # S3-compatible servers differ in their support of the newer flexible checksums.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
        return client

    def _refused(self, exc: ClientError) -> str:
        code = _code(exc)
        if code in _AUTHENTICATION_FAILURES:
            return (
                f" (the credentials configured in [[storage.s3]] '{self.config.name}' are not "
                "accepted: the key is unknown, or the secret is wrong or has been revoked)"
            )
        if code == "NoSuchBucket":
            return f" (the bucket '{self.bucket}' does not exist)"
        if _status(exc) == 403:
            return (
                f" (the credentials configured in [[storage.s3]] '{self.config.name}' do not "
                f"permit writing to the bucket '{self.bucket}')"
            )
        if 300 <= (_status(exc) or 0) < 400:
            return " (a redirect, which is not followed: configure the bucket's own endpoint)"
        return ""

    # --- at request time -----------------------------------------------------------------------

    def check(self) -> None:
        client = self.client(self.check_options)
        probe = self.key(f"{PROBE_PREFIX}{uuid.uuid4().hex}").removesuffix(PACKAGE_SUFFIX)
        try:
            upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=probe)["UploadId"]
            client.abort_multipart_upload(Bucket=self.bucket, Key=probe, UploadId=upload_id)
        except ClientError as exc:
            raise StorageLocationError(
                f"S3 storage '{self.config.name}' refused to write to {self.where}: "
                f"{describe(exc)}{self._refused(exc)}."
            ) from None
        except BotoCoreError as exc:
            raise StorageLocationError(
                f"S3 storage '{self.config.name}' cannot be reached for {self.where} "
                f"({describe(exc)})."
            ) from None
        finally:
            client.close()

    def prepare(self) -> None:
        """Nothing to make ready: the probe of `check()` proved the bucket writable."""

    # --- writing -------------------------------------------------------------------------------

    def begin(self, operation_id: str) -> Upload:
        client = self.client(self.upload_options)
        key = self.key(operation_id)
        try:
            upload_id = client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType="application/zip"
            )["UploadId"]
        except ClientError as exc:
            client.close()
            message = (
                f"S3 storage '{self.config.name}' refused to start the upload of "
                f"s3://{self.bucket}/{key}: {describe(exc)}{self._refused(exc)}"
            )
            if _code(exc) == "NoSuchBucket" or _status(exc) == 403:
                raise StorageLocationError(message) from None  # no retry can fix these
            raise StorageError(message) from None
        except BotoCoreError as exc:
            client.close()
            raise StorageError(
                f"cannot start the upload of s3://{self.bucket}/{key}: {describe(exc)}"
            ) from None
        return _S3Upload(self, client, key, upload_id)

    def _abort_unfinished(self, client: Any, key: str) -> int:
        """Abort every unfinished multipart upload of `key`; how many there were."""
        aborted = 0
        for page in _pages(client, self.bucket, key):
            for upload in page.get("Uploads", []):
                if upload["Key"] == key:
                    _abort(client, self.bucket, key, upload["UploadId"])
                    aborted += 1
        return aborted

    def discard_partial(self, operation_id: str) -> None:
        key = self.key(operation_id)
        client = self.client(self.upload_options)
        try:
            self._abort_unfinished(client, key)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(
                f"cannot remove the unfinished uploads of s3://{self.bucket}/{key}: {describe(exc)}"
            ) from None
        finally:
            client.close()

    def delete(self, operation_id: str) -> bool:
        key = self.key(operation_id)
        client = self.client(self.upload_options)
        try:
            try:
                client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _status(exc) == 404:
                    return False
                if _status(exc) != 403:  # may delete without being allowed to read: try
                    raise
            client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(
                f"cannot delete s3://{self.bucket}/{key}: {describe(exc)}"
                f"{self._refused(exc) if isinstance(exc, ClientError) else ''}"
            ) from None
        finally:
            client.close()
        return True


class _S3Upload(Upload):
    def __init__(self, target: S3Target, client: Any, key: str, upload_id: str):
        self.target = target
        self.client = client
        self.key = key
        self.upload_id = upload_id
        self.parts: list[dict[str, Any]] = []
        self.uploaded = 0  # bytes the storage took
        self.chunks = ChunkedStream(self.next_part_size, self.upload_part)
        self.stream = cast(IO[bytes], self.chunks)  # a raw binary stream, as zipfile needs
        self.publisher: Any = None  # the client that completes the upload: PUBLISH_MAX_ATTEMPTS
        self.finished = False
        self.completing = False
        self.done = False
        self.lock = threading.Lock()

    @property
    def where(self) -> str:
        return f"s3://{self.target.bucket}/{self.key}"

    def next_part_size(self) -> int:
        return self.target.part_size * (1 + len(self.parts) // PARTS_PER_STEP)

    def upload_part(self, data: bytes) -> None:
        number = len(self.parts) + 1
        if number > MAX_PARTS:
            raise StorageError(f"{self.where}: the package is too large for a multipart upload")
        try:
            response = self.client.upload_part(
                Bucket=self.target.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
            )
        except ClientError as exc:
            raise StorageError(
                f"S3 storage '{self.target.config.name}' refused part {number} of {self.where}: "
                f"{describe(exc)}{self.target._refused(exc)}",
                permanent=not is_transient(exc),
            ) from None
        except BotoCoreError as exc:
            raise StorageError(
                f"cannot upload part {number} of {self.where}: {describe(exc)}"
            ) from None
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self.uploaded += len(data)

    def finish(self, manifest: dict[str, Any]) -> None:
        try:
            self.chunks.close()  # uploads what is left
            if not self.parts:
                self.upload_part(b"")
            if self.uploaded != self.chunks.written:
                raise StorageError(
                    f"{self.where}: {self.uploaded} bytes were uploaded of the "
                    f"{self.chunks.written} written, so the package was not published"
                )
        except StorageError:
            self.discard()
            raise
        # Made now, outside the store's lock that publish() runs under.
        self.publisher = self.target.client(
            {**self.target.upload_options, "max_attempts": PUBLISH_MAX_ATTEMPTS}
        )
        self.finished = True

    def publish(self) -> str:
        if not self.finished:
            raise StorageError(f"{self.where}: publish() before finish()")
        self.completing = True
        try:
            # Quick: this runs under the store's lock. A completion that reached the storage but
            # whose answer was lost is retried as NoSuchUpload; discard() then deletes the object
            # and the export is tried again.
            self.publisher.complete_multipart_upload(
                Bucket=self.target.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
        except ClientError as exc:
            raise StorageError(
                f"S3 storage '{self.target.config.name}' refused to complete {self.where}: "
                f"{describe(exc)}{self.target._refused(exc)}",
                permanent=not is_transient(exc) and _code(exc) != "NoSuchUpload",
            ) from None
        except BotoCoreError as exc:
            raise StorageError(f"cannot complete {self.where}: {describe(exc)}") from None
        self.done = True
        self._close()
        return self.where

    def discard(self) -> None:
        self.chunks.abandon()
        with self.lock:
            if self.done:
                return
            self.done = True
        bucket = self.target.bucket
        try:
            try:
                self.client.abort_multipart_upload(
                    Bucket=bucket, Key=self.key, UploadId=self.upload_id
                )
            except ClientError as exc:
                if _code(exc) != "NoSuchUpload":
                    raise
            if self.completing:  # the completion may have reached the storage
                self.client.delete_object(Bucket=bucket, Key=self.key)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("cannot abort the upload of %s: %s", self.where, describe(exc))
        finally:
            self._close()

    def _close(self) -> None:
        self.client.close()
        if self.publisher is not None:
            self.publisher.close()


def _abort(client: Any, bucket: str, key: str, upload_id: str) -> None:
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except ClientError as exc:
        if _code(exc) != "NoSuchUpload":
            raise


# The key of a package, `[PREFIX/]<operationId>.zip`: the operation it is for.
_PACKAGE_KEY = re.compile(r"(?:^|/)(?P<operation>[0-9a-f-]{36})\.zip$")


def sweep_uploads(
    config: S3StorageConfig, older_than: timedelta, running: Callable[[str], bool]
) -> int:
    """Abort the unfinished multipart uploads of packages in `config`'s buckets that were
    started more than `older_than` ago (by the storage's clock) and whose operation is not
    `running`: what attempts whose worker died left behind. Uploads of other keys are not
    ours and are left alone. Returns how many were aborted."""
    target = S3Target(config.buckets[0], "", config) if config.buckets else None
    if target is None:
        return 0
    client = target.client(target.check_options)
    aborted = 0
    try:
        for bucket in config.buckets:
            for page in _pages(client, bucket, ""):
                cutoff = page["ResponseMetadata"]["HTTPHeaders"].get("date")
                now = parsedate_to_datetime(cutoff) if cutoff else datetime.now(UTC)
                for upload in page.get("Uploads", []):
                    found = _PACKAGE_KEY.search(upload["Key"])
                    if (
                        found is not None
                        and upload["Initiated"] < now - older_than
                        and not running(found["operation"])
                    ):
                        _abort(client, bucket, upload["Key"], upload["UploadId"])
                        aborted += 1
    finally:
        client.close()
    return aborted


def _pages(client: Any, bucket: str, prefix: str) -> Any:
    """The pages of ListMultipartUploads for `prefix` (each request retried by botocore)."""
    markers: dict[str, str] = {}
    while True:
        page = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix, **markers)
        yield page
        if not page.get("IsTruncated"):
            return
        markers = {
            "KeyMarker": page.get("NextKeyMarker", ""),
            "UploadIdMarker": page.get("NextUploadIdMarker", ""),
        }


def _parse_s3_url(location: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://BUCKET/PREFIX`, or StorageLocationError saying what is wrong."""
    try:
        parts = urlsplit(location)
    except ValueError:
        raise StorageLocationError(
            "The S3 storage location is malformed: give s3://BUCKET/PREFIX."
        ) from None
    bucket = parts.netloc
    if parts.query or parts.fragment or "@" in bucket or ":" in bucket:
        raise StorageLocationError(
            "An S3 storage location is s3://BUCKET/PREFIX, without credentials, port, query or "
            "fragment: the endpoint and credentials come from the configuration."
        )
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise StorageLocationError(
            f"The S3 storage location is malformed: '{bucket[:63]}' is not a valid bucket name "
            "(give s3://BUCKET/PREFIX)."
        )
    prefix = parts.path.strip("/")
    segments = prefix.split("/") if prefix else []
    if any(s in ("", ".", "..") for s in segments) or "\x00" in prefix or len(prefix) > 900:
        raise StorageLocationError(
            "The S3 storage location is malformed: the prefix may not contain empty, '.' or "
            "'..' segments or NUL, and must be shorter than 900 characters."
        )
    return bucket, prefix


def s3_target(location: str, configs: tuple[S3StorageConfig, ...]) -> S3Target | None:
    """The target for `s3://BUCKET/PREFIX`, None if `location` is not an S3 location, or
    StorageLocationError for an S3 location that cannot be used (malformed, a bucket no
    [[storage.s3]] entry lists). Presigned http(s) URLs are `s3_presigned`'s."""
    scheme = location.split(":", 1)[0].lower() if ":" in location else ""
    if scheme != "s3":
        return None
    bucket, prefix = _parse_s3_url(location)
    for config in configs:
        if bucket in config.buckets:
            return S3Target(bucket, prefix, config)
    raise StorageLocationError(
        f"The S3 bucket '{bucket}' is not configured: list it in the `buckets` of a "
        "[[storage.s3]] entry to export there."
    )
