"""Storage targets, chosen by the storageLocation URL."""

from __future__ import annotations

from datapolicy.config import StorageConfig
from datapolicy.engine.targets.azure import azure_target
from datapolicy.engine.targets.base import (
    StorageError,
    StorageLocationError,
    Target,
    Upload,
)
from datapolicy.engine.targets.local import local_target
from datapolicy.engine.targets.s3 import s3_target

MAX_LOCATION_LENGTH = 2048


def resolve_target(location: str, storage: StorageConfig) -> Target:
    """The target a storage location names, or StorageLocationError saying why there is none.

    Each kind of target recognises its own locations (returning None for others); the first
    that recognises the location decides."""
    if not location or len(location) > MAX_LOCATION_LENGTH:
        raise StorageLocationError("Storage Location is not valid.")
    target = (
        local_target(location, storage.local.roots)
        or azure_target(location, storage.azure)
        or s3_target(location, storage.s3)
    )
    if target is not None:
        return target
    scheme = location.split(":", 1)[0].lower() if ":" in location else ""
    if scheme in ("https", "http"):
        raise StorageLocationError(
            "Storage Location is not valid: an http(s) location must be an Azure Blob "
            "container SAS URL on an allowed host ([storage.azure]).",
            code="StorageLocationNotSupported",
        )
    raise StorageLocationError(
        "Storage Location is not valid: give an absolute path, a file:// URL, an Azure Blob "
        "container SAS URL or s3://BUCKET/PREFIX."
    )


__all__ = ["StorageError", "StorageLocationError", "Target", "Upload", "resolve_target"]
