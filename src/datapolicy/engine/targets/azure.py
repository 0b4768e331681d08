"""The Azure Blob target: a container named by a service SAS URL, as Graph's exportPersonalData
takes it (`https://ACCOUNT.blob.core.windows.net/CONTAINER?sv=...&sp=...&sig=...`), or the
path-style form of emulators such as Azurite (`http://127.0.0.1:10000/ACCOUNT/CONTAINER?...`).

Only the blob endpoints listed in `[storage.azure] allowed_hosts` may be named: `host`, `host:port`
or `*.suffix` (plain http only for hosts listed without a wildcard). The client is given the
endpoint rebuilt from the checked URL (`hosts.HttpURL`), and follows no redirect (azure-core's
RedirectPolicy would follow a 307/308 to any host and scheme): a redirect fails the check or the
upload, naming its status.

At request time the location is validated as Graph validates it, with Graph's error codes and
messages, in Graph's order (docs/graph-compatibility.md, "Azure Blob storage locations"): a SAS
must be present, it must be a service SAS (no `ss`/`srt`), the URL must name a container; the
SAS must not allow listing, must allow writing and must not allow reading. When the SAS carries
its permissions (`sp`) they are read from it; when they come from a stored access policy (`si`)
they are probed as Graph does. `check` does what changes nothing (so a refused PATCH leaves the
container as it was); `prepare`, once the export is really started or moved here, writes
`RequestInfo.json` into the container with an if-not-exists condition (a conflict means the
container was already used for an export) and probes reading.

The package is uploaded to the blob `<operationId>.zip` as staged blocks while it is made
(memory: one block); `finish()` stages the last block and `publish()` commits the block list, so the
blob appears whole or not at all. Block ids carry a nonce of the attempt, so two attempts at one
operation (one whose worker stalled past its lease and woke up) never mix blocks, and each
commits only its own list. Uncommitted blocks are invisible and are dropped by the next commit
of the blob (a successor's publish). Azure can drop uncommitted blocks only all at once (a
commit), which would take a live successor's too, so a failed attempt's `discard()` leaves its
blocks; `discard_partial()`, run once no attempt can still publish (the operation failed or was
deleted), drops them by committing an empty list and deleting the empty blob (when the SAS
allows deleting). Whatever is left, Azure discards uncommitted blocks after a week. No sweep
looks for orphans: the SAS may not allow listing (Graph's rule), and blocks are invisible.

Every message that reaches an operation, a response or a log names the account, container and
blob, the HTTP status and the storage error code, and never the SAS: queries are stripped.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any, cast
from urllib.parse import parse_qs, unquote

import orjson
from azure.core import MatchConditions
from azure.core.credentials import AzureSasCredential
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobBlock, ContainerClient, ContentSettings, ExponentialRetry

from datapolicy.config import AzureStorageConfig
from datapolicy.engine.targets.base import (
    ChunkedStream,
    StorageError,
    StorageLocationError,
    Target,
    Upload,
)
from datapolicy.engine.targets.hosts import HttpURL, host_allowed, http_url, listed_exactly
from datapolicy.redact import redact

logger = logging.getLogger(__name__)
# The SDK logs every request at INFO (queries redacted): too much for a service's log.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

PACKAGE_SUFFIX = ".zip"
REQUEST_INFO = "RequestInfo.json"
BLOCK_SIZE = 8 * 1024 * 1024

# Graph's codes and messages (GraphApiErrorMessage in Microsoft's backend).
SAS_INVALID = (
    "SharedAccessSignatureTokenInvalid",
    "Storage destination does not include SAS credentials.",
)
NOT_AZURE_BLOB = (
    "StorageLocationNotAzureBlob",
    "Storage destination must be an azure blob container.",
)
NOT_SERVICE_SAS = (
    "StorageLocationNotServiceSAS",
    "Storage destination needs to have a Service SAS, not an Account SAS. See "
    "https://docs.microsoft.com/en-us/azure/storage/common/storage-dotnet-shared-access-signature-part-1"
    " for more information.",
)
ALLOWS_LIST = (
    "StorageLocationShouldNotAllowListAccess",
    "Storage destination should not allow list access.",
)
ALLOWS_READ = (
    "StorageLocationShouldNotAllowReadAccess",
    "Storage destination should not allow read access.",
)
NEEDS_WRITE = (
    "StorageLocationNeedsWriteAddPermissions",
    "Storage destination does not have write/add permissions.",
)
ALREADY_USED = (
    "StorageLocationAlreadyUsed",
    "Storage destination has already been used for an export. If this is not true, delete "
    "'RequestInfo.json' from the container and try again.",
)

# Azure storage hosts: ACCOUNT.SERVICE.core.windows.net (and the national clouds' suffixes).
_AZURE_HOST = re.compile(
    r"^(?P<account>[a-z0-9]+)\.(?P<service>blob|file|queue|table|dfs|web)"
    r"(?:-secondary)?\.core\.(?:windows\.net|chinacloudapi\.cn|usgovcloudapi\.net|cloudapi\.de)$"
)
# ACCOUNT.blob.<anything>: the account is in the host, the path is /CONTAINER
_VIRTUAL_HOST = re.compile(r"^[a-z0-9]+\.blob\.")

# Uploads ride out a storage outage of about half a minute before the attempt fails (the worker
# then retries the export with its own backoff); a check at request time gives up sooner.
UPLOAD_RETRY: dict[str, Any] = {
    "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=4),
    "connection_timeout": 10,
    "read_timeout": 120,
}
CHECK_RETRY: dict[str, Any] = {
    "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=1),
    "connection_timeout": 5,
    "read_timeout": 20,
}


def _per_client(options: dict[str, Any]) -> dict[str, Any]:
    """`options` with a retry policy of the client's own: a policy is a link of the pipeline
    it is built into (`next`), so one instance shared by two clients sends the first client's
    requests through the second's transport, which closing the second closes (two attempts at
    once, in one process, broke each other's uploads)."""
    policy = options.get("retry_policy")
    return options if policy is None else {**options, "retry_policy": copy.copy(policy)}


def describe(exc: BaseException) -> str:
    """A short reason for a storage failure: HTTP status and storage error code, no secrets."""
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        return f"HTTP {exc.status_code} {_error_code(exc) or exc.reason or ''}".strip()
    if isinstance(exc, AzureError):
        inner = exc.inner_exception or exc
        return redact(f"{type(exc).__name__}: {type(inner).__name__}")
    return redact(f"{type(exc).__name__}: {exc}")


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


# A SAS whose signature is wrong, or that has expired or been revoked: Azure says
# AuthenticationFailed, Azurite AuthorizationFailure (which Azure uses for network rules).
_AUTHENTICATION_FAILURES = ("AuthenticationFailed", "AuthorizationFailure")


def _is_authentication_failure(exc: BaseException) -> bool:
    return (
        isinstance(exc, HttpResponseError)
        and exc.status_code == 403
        and _error_code(exc) in _AUTHENTICATION_FAILURES
    )


def _refused(exc: HttpResponseError) -> str:
    if _is_authentication_failure(exc):
        return (
            " (the SAS is not accepted: its signature is wrong, or it has expired or been revoked)"
        )
    if exc.status_code == 403:
        return " (the SAS does not permit this)"
    if 300 <= (exc.status_code or 0) < 400:
        return " (a redirect, which is not followed: give the URL of the container itself)"
    return ""


def _refused_for_good(exc: HttpResponseError) -> bool:
    """A refusal no retry can change: a redirect (never followed), or a 4xx other than a
    timeout, a conflict or throttling."""
    status = exc.status_code or 0
    return 300 <= status < 500 and status not in (408, 409, 429)


class AzureTarget(Target):
    """A blob container reached through a SAS URL."""

    def __init__(
        self,
        location: str,
        config: AzureStorageConfig,
        *,
        block_size: int = BLOCK_SIZE,
        upload_options: dict[str, Any] | None = None,
        check_options: dict[str, Any] | None = None,
    ):
        self.location = location
        self.config = config
        self.block_size = block_size
        self.upload_options = UPLOAD_RETRY if upload_options is None else upload_options
        self.check_options = CHECK_RETRY if check_options is None else check_options
        parts = http_url(location)
        if parts is None:
            raise StorageLocationError(NOT_AZURE_BLOB[1], code=NOT_AZURE_BLOB[0])
        self.url: HttpURL = parts  # what is checked is what the client is given
        self.scheme = parts.scheme
        self.hostname = parts.hostname
        self.port = parts.port
        self.host = parts.host
        self.path = [unquote(p) for p in parts.path.split("/") if p]
        self.query = parts.query
        self.fields = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
        self.account = ""
        self.container = ""

    # --- validation --------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """The container, for messages: the URL without its query."""
        return f"{self.scheme}://{self.host}/{'/'.join(self.path)}"

    def _validate(self) -> None:
        """The checks that need no request: host, SAS kind, container, permissions in `sp`."""
        if not self._host_allowed():
            raise StorageLocationError(
                f"The Azure Blob endpoint '{self.host}' is not allowed: list it in "
                "[storage.azure] allowed_hosts to export there.",
            )
        if self.scheme != "https" and not self._listed_exactly():
            raise StorageLocationError(
                f"The Azure Blob endpoint '{self.host}' must be reached over https.",
            )
        if "sig" not in self.fields:
            raise StorageLocationError(SAS_INVALID[1], code=SAS_INVALID[0])
        if "ss" in self.fields or "srt" in self.fields:
            raise StorageLocationError(NOT_SERVICE_SAS[1], code=NOT_SERVICE_SAS[0])
        azure_host = _AZURE_HOST.match(self.hostname)
        if azure_host is not None and azure_host["service"] != "blob":
            raise StorageLocationError(NOT_AZURE_BLOB[1], code=NOT_AZURE_BLOB[0])
        if _VIRTUAL_HOST.match(self.hostname):
            if len(self.path) != 1:
                raise StorageLocationError(NOT_AZURE_BLOB[1], code=NOT_AZURE_BLOB[0])
            self.account, self.container = self.hostname.split(".", 1)[0], self.path[0]
        else:  # path-style, as emulators serve it: /ACCOUNT/CONTAINER
            if len(self.path) != 2:
                raise StorageLocationError(NOT_AZURE_BLOB[1], code=NOT_AZURE_BLOB[0])
            self.account, self.container = self.path
        if self.fields.get("sr", "c") != "c":
            raise StorageLocationError(NOT_AZURE_BLOB[1], code=NOT_AZURE_BLOB[0])
        permissions = self.fields.get("sp")
        if permissions is not None:
            if "l" in permissions:
                raise StorageLocationError(ALLOWS_LIST[1], code=ALLOWS_LIST[0])
            if "w" not in permissions:
                raise StorageLocationError(NEEDS_WRITE[1], code=NEEDS_WRITE[0])
            if "r" in permissions:
                raise StorageLocationError(ALLOWS_READ[1], code=ALLOWS_READ[0])

    def _host_allowed(self) -> bool:
        return host_allowed(self.hostname, self.port, self.config.allowed_hosts)

    def _listed_exactly(self) -> bool:
        return listed_exactly(self.hostname, self.port, self.config.allowed_hosts)

    @property
    def may_delete(self) -> bool:
        """Whether the SAS lets us delete (unknown when it comes from a stored policy)."""
        permissions = self.fields.get("sp")
        return permissions is None or "d" in permissions

    def _client(self, options: dict[str, Any]) -> ContainerClient:
        self._validate()
        base = self.url.origin
        if not _VIRTUAL_HOST.match(self.hostname):
            base += f"/{self.account}"
        return ContainerClient(
            base,
            self.container,
            credential=AzureSasCredential(self.query),
            permit_redirects=False,  # a redirect could lead anywhere: it is an error instead
            **_per_client(options),
        )

    def check(self) -> None:
        """The checks that change nothing: the URL, the SAS and, when its permissions come from
        a stored access policy, whether it allows listing (probed with a list request)."""
        self._checking(self._refuses_listing)

    def prepare(self) -> None:
        """Marks the container as used: RequestInfo.json, if it is not there yet."""
        self._checking(self._write_request_info)

    def _checking(self, step: Callable[[ContainerClient], None]) -> None:
        """Runs `step` with a client for checks; a failure is a StorageLocationError."""
        container = self._client(self.check_options)
        try:
            step(container)
        except StorageLocationError:
            raise
        except ResourceNotFoundError as exc:
            raise StorageLocationError(
                f"The container '{self.container}' does not exist at {self.where} "
                f"({describe(exc)})."
            ) from None
        except HttpResponseError as exc:
            raise StorageLocationError(
                f"Azure Blob storage at {self.where} refused the request: {describe(exc)}"
                f"{_refused(exc)}."
            ) from None
        except AzureError as exc:
            raise StorageLocationError(
                f"Azure Blob storage at {self.where} cannot be reached ({describe(exc)})."
            ) from None
        finally:
            container.close()

    def _refuses_listing(self, container: ContainerClient) -> None:
        if "sp" in self.fields:  # the permissions are in the SAS: checked by _validate
            return
        try:
            next(iter(container.list_blobs(results_per_page=1).by_page()), None)
        except HttpResponseError as exc:
            if exc.status_code != 403 or _is_authentication_failure(exc):
                raise
        else:
            raise StorageLocationError(ALLOWS_LIST[1], code=ALLOWS_LIST[0])

    def _write_request_info(self, container: ContainerClient) -> None:
        info = container.get_blob_client(REQUEST_INFO)
        body = orjson.dumps(
            {
                "Description": "Personal data export by datapolicy. Each export is written "
                "to <operationId>.zip in this container once it is complete.",
                "Timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            },
            option=orjson.OPT_INDENT_2,
        )
        # Written as the package will be (a staged block, then a block list committed if the
        # blob does not exist yet), so that a SAS that can create blobs but not write blocks
        # is refused now rather than when the export runs.
        block_id = base64.b64encode(uuid.uuid4().hex.encode()).decode()
        try:
            info.stage_block(block_id, body, length=len(body))
            info.commit_block_list(
                [BlobBlock(block_id)],
                if_none_match="*",
                content_settings=ContentSettings(content_type="application/json"),
            )
        except (ResourceExistsError, ResourceModifiedError):
            raise StorageLocationError(ALREADY_USED[1], code=ALREADY_USED[0]) from None
        except HttpResponseError as exc:
            if exc.status_code in (409, 412):
                raise StorageLocationError(ALREADY_USED[1], code=ALREADY_USED[0]) from None
            if exc.status_code == 403 and not _is_authentication_failure(exc):
                raise StorageLocationError(NEEDS_WRITE[1], code=NEEDS_WRITE[0]) from None
            raise
        if "sp" not in self.fields:  # a stored access policy: it must not allow reading
            try:
                info.download_blob(offset=0, length=1).readall()
            except HttpResponseError as exc:
                if exc.status_code != 403:
                    raise
            else:
                # best effort, so that the container can be used once the SAS is fixed
                with contextlib.suppress(AzureError):
                    info.delete_blob()
                raise StorageLocationError(ALLOWS_READ[1], code=ALLOWS_READ[0])

    # --- writing -------------------------------------------------------------------------------

    def _blob_name(self, operation_id: str) -> str:
        return f"{operation_id}{PACKAGE_SUFFIX}"

    def begin(self, operation_id: str) -> Upload:
        container = self._client(self.upload_options)  # validated again at write time
        return _AzureUpload(self, container, self._blob_name(operation_id))

    def discard_partial(self, operation_id: str) -> None:
        container = self._client(self.upload_options)
        try:
            _drop_uncommitted(self, container, self._blob_name(operation_id), committed=False)
        finally:
            container.close()

    def delete(self, operation_id: str) -> bool:
        container = self._client(self.upload_options)
        name = self._blob_name(operation_id)
        try:
            container.delete_blob(name)
        except ResourceNotFoundError:
            return False
        except HttpResponseError as exc:
            if exc.status_code == 403:  # no retry can fix this: the SAS no longer allows it
                raise StorageLocationError(
                    f"Azure Blob storage refused to delete {self.where}/{name}: "
                    f"{describe(exc)}{_refused(exc)}."
                ) from None
            raise StorageError(
                f"cannot delete {self.where}/{name}: {describe(exc)}{_refused(exc)}"
            ) from None
        except AzureError as exc:
            raise StorageError(f"cannot delete {self.where}/{name}: {describe(exc)}") from None
        finally:
            container.close()
        return True


def _drop_uncommitted(
    target: AzureTarget, container: ContainerClient, name: str, *, committed: bool
) -> None:
    """Remove the uncommitted blocks of blob `name` (and the blob, if `committed` says that a
    commit of ours may have reached the storage): commit an empty block list, which drops every
    uncommitted block, unless a committed blob is there (a published package is not partial),
    then delete that empty blob. Without delete permission this would leave an empty blob, so
    then the blocks are left to expire (Azure drops uncommitted blocks after a week)."""
    if not target.may_delete:
        return
    blob = container.get_blob_client(name)
    try:
        if committed:
            blob.delete_blob()
            return
        try:
            written = blob.commit_block_list([], if_none_match="*")
        except (ResourceExistsError, ResourceModifiedError):
            return  # a committed blob: not ours to discard here
        except HttpResponseError as exc:
            if exc.status_code in (409, 412):
                return
            raise
        etag = cast(str, written["etag"])  # typed str | datetime with the other properties
        blob.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
    except ResourceNotFoundError:
        return
    except AzureError as exc:
        raise StorageError(
            f"cannot remove the partial package {target.where}/{name}: {describe(exc)}"
        ) from None


class _AzureUpload(Upload):
    def __init__(self, target: AzureTarget, container: ContainerClient, name: str):
        self.target = target
        self.container = container
        self.name = name
        self.blob = container.get_blob_client(name)
        self.chunks = ChunkedStream(lambda: self.target.block_size, self.stage)
        self.stream = cast(IO[bytes], self.chunks)  # a raw binary stream, as zipfile needs
        self.blocks: list[BlobBlock] = []
        self.staged = 0  # bytes the storage took
        self.nonce = uuid.uuid4().hex  # block ids differ between attempts, all of one length
        self.committing = False
        self.finished = False
        self.closed = False
        self.discarded = False

    @property
    def where(self) -> str:
        return f"{self.target.where}/{self.name}"

    def stage(self, data: bytes) -> None:
        block_id = base64.b64encode(f"{self.nonce}{len(self.blocks):08d}".encode()).decode()
        try:
            self.blob.stage_block(block_id, data, length=len(data))
        except HttpResponseError as exc:
            raise StorageError(
                f"Azure Blob storage refused a block of {self.where}: {describe(exc)}"
                f"{_refused(exc)}",
                permanent=_refused_for_good(exc),
            ) from None
        except AzureError as exc:
            raise StorageError(f"cannot upload a block of {self.where}: {describe(exc)}") from None
        self.blocks.append(BlobBlock(block_id))
        self.staged += len(data)

    def finish(self, manifest: dict[str, Any]) -> None:
        try:
            self.chunks.close()  # stages what is left
            if self.staged != self.chunks.written:
                raise StorageError(
                    f"{self.where}: {self.staged} bytes were staged of the "
                    f"{self.chunks.written} written, so the package was not published"
                )
        except StorageError:
            self.discard()
            raise
        self.finished = True

    def publish(self) -> str:
        if not self.finished:
            raise StorageError(f"{self.where}: publish() before finish()")
        self.committing = True  # from here on, a discard removes the blob itself
        try:
            self.blob.commit_block_list(
                self.blocks, content_settings=ContentSettings(content_type="application/zip")
            )
        except HttpResponseError as exc:
            raise StorageError(
                f"Azure Blob storage refused to commit {self.where}: "
                f"{describe(exc)}{_refused(exc)}",
                permanent=_refused_for_good(exc),
            ) from None
        except AzureError as exc:
            raise StorageError(f"cannot commit {self.where}: {describe(exc)}") from None
        self.container.close()
        self.closed = True
        return self.where

    def discard(self) -> None:
        self.chunks.abandon()
        if self.discarded:
            return
        self.discarded = True
        if not self.committing:  # staged blocks: left for a commit (see the module's doc)
            self.container.close()
            return
        container = (
            self.target._client(self.target.upload_options) if self.closed else self.container
        )
        try:
            _drop_uncommitted(self.target, container, self.name, committed=self.committing)
        except StorageError as exc:  # the blocks expire on their own; the blob is invisible
            logger.warning("%s", exc)
        finally:
            container.close()
            self.container.close()


def azure_target(location: str, config: AzureStorageConfig) -> AzureTarget | None:
    """The target for an Azure Blob SAS URL, or None if `location` is not one.

    A location is taken as Azure's if it is an http(s) URL on an Azure storage host, on a host
    listed in allowed_hosts, or carrying a SAS signature (`sig` and `sv`)."""
    parts = http_url(location)
    if parts is None:
        return None
    target = AzureTarget(location, config)
    if (
        _AZURE_HOST.match(target.hostname)
        or target._host_allowed()
        or ("sig" in target.fields and "sv" in target.fields)
    ):
        return target
    return None
