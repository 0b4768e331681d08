"""Storage targets, chosen by the storageLocation URL.

The Azure and S3 targets are imported when a location is not a local one: their SDKs (azure's
with aiohttp, boto3) cost about 0.75 s of CPU to import, paid otherwise by every `serve` and
`worker` process and every command that opens the store, which need them only for such a
location."""

from __future__ import annotations

import re

from datapolicy.config import StorageConfig
from datapolicy.engine.targets.base import (
    StorageError,
    StorageLocationError,
    Target,
    Upload,
)
from datapolicy.engine.targets.local import local_target

MAX_LOCATION_LENGTH = 2048
# C0 controls and DEL, written or percent-encoded: no storage location needs one, and a NUL,
# CR or LF could cut a path short or inject a header or a log line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]|%(?:[01][0-9a-f]|7f)", re.IGNORECASE)


def resolve_target(location: str, storage: StorageConfig) -> Target:
    """The target a storage location names, or StorageLocationError saying why there is none.

    Each kind of target recognises its own locations (returning None for others); the first
    that recognises the location decides. Before that, what no target takes is refused: an
    empty or over-long location, control characters and surrounding white space."""
    if not location:
        raise StorageLocationError("Storage Location is not valid.")
    if len(location) > MAX_LOCATION_LENGTH:
        raise StorageLocationError(
            f"Storage Location is not valid: it is longer than {MAX_LOCATION_LENGTH} characters."
        )
    if _CONTROL.search(location):
        raise StorageLocationError(
            "Storage Location is not valid: it contains a control character (such as NUL, a tab "
            "or a line break), written or percent-encoded."
        )
    if location != location.strip():
        raise StorageLocationError(
            "Storage Location is not valid: it begins or ends with white space."
        )
    local = local_target(location, storage.local.roots)
    if local is not None:
        return local
    from datapolicy.engine.targets.azure import azure_target
    from datapolicy.engine.targets.s3 import s3_target
    from datapolicy.engine.targets.s3_presigned import presigned_target

    target = (
        azure_target(location, storage.azure)
        or s3_target(location, storage.s3)
        or presigned_target(location, storage)
    )
    if target is not None:
        return target
    scheme = location.split(":", 1)[0].lower() if ":" in location else ""
    if scheme in ("https", "http"):
        raise StorageLocationError(
            "Storage Location is not valid: an http(s) location must be an Azure Blob "
            "container SAS URL on an allowed host ([storage.azure]) or a SigV4 presigned S3 "
            "PUT URL on an allowed endpoint ([storage.s3_presigned]).",
            code="StorageLocationNotSupported",
        )
    raise StorageLocationError(
        "Storage Location is not valid: give an absolute path, a file:// URL, an Azure Blob "
        "container SAS URL, s3://BUCKET/PREFIX or a presigned S3 PUT URL."
    )


__all__ = ["StorageError", "StorageLocationError", "Target", "Upload", "resolve_target"]
