"""The presigned S3 target: a SigV4 presigned PUT URL, for callers that can hand over only a URL
(`https://BUCKET.s3.REGION.amazonaws.com/KEY?X-Amz-Algorithm=AWS4-HMAC-SHA256&...`, or path
style `https://ENDPOINT/BUCKET/KEY?...`). The package is written to exactly that object: the key
is the caller's, not `<operationId>.zip`. Which endpoints are allowed, and what is checked when
the request arrives, is in `presigned_url`.

A presigned PUT is one request for one object, and that shapes everything here:

- No multipart upload (each part needs a signature of its own, for an upload id that does not
  exist when the caller signs). The package is spooled while it is made to an owner-only file in
  the spool directory (`spool`; memory stays flat) and sent with ONE `PUT` with `Content-Length`,
  streamed from the file: the object appears whole or not at all. S3 takes at most 5 GiB in one
  PUT, so a package that grows past that fails as soon as it does, saying to use
  `s3://BUCKET/PREFIX`.
- The PUT is made in `finish()`, not `publish()`. `publish()` runs inside the store's write
  transaction, which holds SQLite's write lock; every other writer (requests, heartbeats, other
  workers) waits at most 10 s for it, and a PUT of gigabytes, with retries, does not fit there.
  So the object can appear a moment before the operation is `complete`; if completing then fails
  (the lease was lost, or a DELETE arrived while the package was being sent), the object stays,
  and a retry overwrites it with a whole new package.
- The PUT goes to the URL rebuilt from the checked components (`hosts.HttpURL`), through
  botocore's `URLLib3Session`, which follows no redirect: a 3xx fails the export at once.
- The request says `Expect: 100-continue` (botocore's HTTP stack, which supports it), so that a
  storage that refuses it (an expired or wrong signature) can answer before the body is sent.
- Transient failures (5xx, throttling, dropped connections, timeouts) are retried as the S3
  target's requests are (the same tries, and the backoff of botocore's standard mode: a random
  wait of up to 50 ms, from 1 s for throttling, doubling with each try, at most 20 s; about half a
  minute in all on average), by tenacity since the PUT is not a botocore client call; each try
  re-sends the whole file from its start. Other refusals (403 SignatureDoesNotMatch, AccessDenied
  for an expired URL, 404 NoSuchBucket) are not, and fail the operation at once
  (`StorageError.permanent`) with the HTTP status and S3 error code.
- Nothing can be deleted with a PUT URL, nor can it be probed without writing: `check()` makes no
  request (any request with the URL would create the object), `delete()` leaves the object (the
  caller that signed the URL owns it; the operation's record goes), and a failed attempt leaves
  no object because its PUT never succeeded. `discard()` and `discard_partial()` remove spool
  files.

Messages never carry the query (signature and credential scope): they name the URL without it,
the HTTP status and the S3 error code; urllib3's debug log of each request is stripped too.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError
from botocore.httpsession import URLLib3Session
from botocore.utils import get_environ_proxies
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)

from datapolicy.config import StorageConfig
from datapolicy.engine.targets.base import StorageError, StorageLocationError, Target, Upload
from datapolicy.engine.targets.hosts import http_url
from datapolicy.engine.targets.presigned_url import (
    MAX_EXPIRES,
    PresignedURL,
    is_sigv2,
    is_sigv4,
    on_s3_host,
    parse_presigned,
    query_fields,
)
from datapolicy.engine.targets.s3 import (
    TRANSIENT_EXCEPTIONS,
    UPLOAD_OPTIONS,
    answer,
    describe,
    transient,
)
from datapolicy.engine.targets.spool import Spool, remove_spooled, start_spool
from datapolicy.engine.verify import check_written
from datapolicy.model import utc_now
from datapolicy.redact import redact

logger = logging.getLogger(__name__)

MAX_OBJECT_SIZE = 5 * 1024**3  # the most S3 takes in one PUT
# At request time the URL must stay valid this long, for the package to be made and sent.
MIN_VALIDITY = timedelta(minutes=15)
# A spool file untouched for longer than any presigned URL lives can never be sent.
STALE_SPOOL = timedelta(seconds=MAX_EXPIRES) + timedelta(days=1)
CONTENT_TYPE = "application/zip"
MAX_ERROR_BODY = 64 * 1024
_ERROR_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")
# Why a storage may refuse a presigned PUT, by S3 error code.
_HINTS = {
    "SignatureDoesNotMatch": "the signature does not match: the URL was altered, or was signed "
    "for another method than PUT, another host, or a Content-Type other than application/zip",
    "AccessDenied": "the URL has expired, or whoever signed it may not write this object",
    "InvalidAccessKeyId": "the access key that signed the URL is unknown to the storage",
    "ExpiredToken": "the temporary credentials that signed the URL have expired",
    "NoSuchBucket": "the bucket does not exist",
    "EntityTooLarge": "the package is larger than the storage takes in one PUT",
}
# botocore's standard mode: a random wait below base * 2 ** (try - 1) seconds, at most 20.
_TRANSIENT_WAIT = wait_random_exponential(multiplier=0.05, max=20)
_THROTTLED_WAIT = wait_random_exponential(multiplier=1, max=20)
_THROTTLING_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestThrottled"}


class _RedactQueries(logging.Filter):
    """urllib3 logs each request line at DEBUG, query and so signature included (as a path
    without a scheme, which `redact` does not see as a URL): strip it."""

    _QUERY = re.compile(r"\?[^\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = redact(self._QUERY.sub("", message)), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactQueries())


class PresignedS3Target(Target):
    """One object, named by a presigned PUT URL."""

    can_delete = False

    def __init__(
        self,
        url: PresignedURL,
        spool_dir: Path | None,
        *,
        max_size: int = MAX_OBJECT_SIZE,
        upload_options: dict[str, Any] | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = url
        self.spool_dir = spool_dir
        self.max_size = max_size
        self.upload_options = UPLOAD_OPTIONS if upload_options is None else upload_options
        self.clock = clock
        self.sleep = sleep  # between tries of the PUT

    @property
    def where(self) -> str:
        """The object, for messages and the operation's record: the URL without its query."""
        return self.url.where

    def check(self) -> None:
        self.url.check_validity(self.clock(), MIN_VALIDITY)

    def prepare(self) -> None:
        """Nothing to make ready: the URL is used once, by the PUT."""

    def begin(self, operation_id: str) -> Upload:
        self.url.check_validity(self.clock(), timedelta(0))  # expired: no retry can fix it
        spool = start_spool(
            self._spool_dir(),
            operation_id,
            limit=self.max_size,
            too_large=f"the package for {self.where} is larger than {_size(self.max_size)}, "
            "the most one presigned PUT can carry: export to s3://BUCKET/PREFIX (a multipart "
            "upload) instead",
            stale_after=STALE_SPOOL,
            where=self.where,
        )
        return _PresignedUpload(self, spool)

    def discard_partial(self, operation_id: str) -> None:
        if self.spool_dir is not None:
            remove_spooled(self.spool_dir, operation_id)

    def delete(self, operation_id: str) -> bool:
        """A presigned PUT URL cannot delete: the object stays (False, as if there were none)."""
        logger.info(
            "the package of %s at %s stays: a presigned PUT URL cannot delete it",
            operation_id,
            self.where,
        )
        return False

    def _spool_dir(self) -> Path:
        if self.spool_dir is None:
            raise StorageError("no spool directory is configured ([storage.s3_presigned])")
        return self.spool_dir

    def send(self, path: Path, size: int) -> None:
        """PUT the file at `path` to the URL, retrying transient failures; StorageError if it
        cannot be done, with the HTTP status and S3 error code and never the query."""
        if self.clock() >= self.url.expires_at:
            raise StorageError(
                f"the presigned URL for {self.where} expired before the package was ready; "
                "nothing was sent",
                permanent=True,
            )
        sender = _PresignedPut(self.url, self.upload_options)
        retrying = Retrying(
            stop=stop_after_attempt(self.upload_options["max_attempts"]),
            wait=_backoff,
            retry=retry_if_exception_type(TRANSIENT_EXCEPTIONS) | retry_if_result(_worth_retrying),
            retry_error_callback=_last_outcome,  # the tries are spent: the last answer or error
            sleep=self.sleep,
            before_sleep=_log_retry,
        )
        try:
            put: _Answer = retrying(sender.put, path, size)
        except BotoCoreError as exc:
            raise StorageError(
                f"cannot send the package to {self.where}: {describe(exc)}"
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        finally:
            sender.close()
        if put.ok:
            return
        hint = _HINTS.get(put.code)
        if 300 <= put.status < 400:
            hint = "a redirect, which is not followed: presign for the object's own endpoint"
        raise StorageError(
            f"the storage refused the package for {self.where}: {answer(put.status, put.code)}"
            f"{f' ({hint})' if hint else ''}",
            permanent=not transient(put.status, put.code),
        )


@dataclass(frozen=True, slots=True)
class _Answer:
    """The storage's answer to the PUT: its HTTP status, and its S3 error code ('' if none)."""

    status: int
    code: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _worth_retrying(put: _Answer) -> bool:
    return not put.ok and transient(put.status, put.code)


def _backoff(state: RetryCallState) -> float:
    """The wait before the next try: from 1 s after a throttling answer, else from 50 ms."""
    outcome = state.outcome
    last = None if outcome is None or outcome.failed else outcome.result()
    throttled = isinstance(last, _Answer) and (last.status == 429 or last.code in _THROTTLING_CODES)
    return float((_THROTTLED_WAIT if throttled else _TRANSIENT_WAIT)(state))


def _last_outcome(state: RetryCallState) -> _Answer:
    """The last try's answer, or its error raised again."""
    assert state.outcome is not None
    result: _Answer = state.outcome.result()
    return result


def _log_retry(state: RetryCallState) -> None:
    outcome = state.outcome
    assert outcome is not None
    failure = outcome.exception()
    if failure is None:
        put: _Answer = outcome.result()
        why = answer(put.status, put.code)
    else:
        why = describe(failure)
    logger.debug(
        "presigned PUT try %d failed (%s); retrying in %.2fs",
        state.attempt_number,
        why,
        state.upcoming_sleep,
    )


class _PresignedPut:
    """Sends a file to a presigned URL with one PUT: the storage's answer, or botocore's
    exception for a connection that failed."""

    def __init__(self, url: PresignedURL, options: dict[str, Any]):
        self.url = url
        self.session = URLLib3Session(
            # A (connect, read) pair, as botocore's own endpoints pass; its stubs say int.
            timeout=(options["connect_timeout"], options["read_timeout"]),  # type: ignore[arg-type]
            proxies=get_environ_proxies(url.url),
        )

    def put(self, path: Path, size: int) -> _Answer:
        with path.open("rb") as body:  # opened afresh: a retry sends the whole file again
            request = AWSRequest(
                method="PUT",
                url=self.url.url,
                data=body,
                headers={
                    "Content-Length": str(size),
                    "Content-Type": CONTENT_TYPE,
                    "Expect": b"100-continue",  # bytes, as botocore's connection compares it
                },
            ).prepare()
            request.stream_output = True
            response = self.session.send(request)
            try:
                if 200 <= response.status_code < 300:
                    return _Answer(response.status_code, "")
                error = _ERROR_CODE.search(response.raw.read(MAX_ERROR_BODY) or b"")
                return _Answer(response.status_code, error.group(1).decode() if error else "")
            finally:
                response.raw.close()

    def close(self) -> None:
        self.session.close()


class _PresignedUpload(Upload):
    def __init__(self, target: PresignedS3Target, spool: Spool):
        self.target = target
        self.spool = spool
        self.stream = spool.stream
        self.sent = False
        self.warned = False

    def finish(self, manifest: dict[str, Any]) -> None:
        try:
            size = self.spool.close()
            with self.spool.reader() as spooled:
                problems = check_written(spooled, manifest)
            if problems:
                raise StorageError(
                    f"the package for {self.target.where} does not verify, so it was not "
                    f"sent: {'; '.join(problems)}"
                )
            self.target.send(self.spool.path, size)
        except BaseException:
            self.discard()
            raise
        self.sent = True
        self.spool.remove()

    def publish(self) -> str:
        if not self.sent:
            raise StorageError(f"{self.target.where}: publish() before finish()")
        return self.target.where

    def discard(self) -> None:
        self.spool.remove()
        if self.sent and not self.warned:
            self.warned = True
            logger.warning(
                "the package at %s was sent but its export did not complete; a presigned PUT "
                "URL cannot delete it",
                self.target.where,
            )


def presigned_target(location: str, storage: StorageConfig) -> PresignedS3Target | None:
    """The target for a SigV4 presigned PUT URL, None if `location` is not an S3 URL, or
    StorageLocationError for one that cannot be used: SigV2, not presigned but on an S3 endpoint
    we know, or failing a check of `presigned_url`."""
    parts = http_url(location)
    if parts is None:
        return None
    fields = query_fields(parts.query)
    if is_sigv4(fields):
        url = parse_presigned(parts, storage)
        return PresignedS3Target(url, storage.s3_presigned.spool_dir)
    if is_sigv2(fields):
        raise StorageLocationError(
            "SigV2 presigned S3 URLs (AWSAccessKeyId, Signature, Expires) are not accepted: "
            "presign the PUT with SigV4 (X-Amz-Algorithm=AWS4-HMAC-SHA256).",
            code="StorageLocationNotSupported",
        )
    if on_s3_host(parts, storage):
        raise StorageLocationError(
            "The URL names an S3 endpoint but is not presigned: give a SigV4 presigned PUT URL, "
            "or s3://BUCKET/PREFIX."
        )
    return None


def _size(limit: int) -> str:
    if limit % 1024**3 == 0:
        return f"{limit // 1024**3} GiB"
    return f"{limit} bytes"
