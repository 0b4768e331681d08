"""Storage targets, chosen by the storageLocation URL."""

from __future__ import annotations

from datapolicy.config import StorageConfig
from datapolicy.engine.targets.base import (
    StorageError,
    StorageLocationError,
    Target,
    Upload,
)
from datapolicy.engine.targets.local import local_target

MAX_LOCATION_LENGTH = 2048


def resolve_target(location: str, storage: StorageConfig) -> Target:
    """The target a storage location names, or StorageLocationError saying why there is none.

    Each kind of target recognises its own locations (returning None for others); the first
    that recognises the location decides."""
    if not location or len(location) > MAX_LOCATION_LENGTH:
        raise StorageLocationError("Storage Location is not valid.")
    target = local_target(location, storage.local.roots)
    if target is not None:
        return target
    scheme = location.split(":", 1)[0].lower() if ":" in location else ""
    if scheme in ("https", "http", "s3"):
        raise StorageLocationError(
            f"Storage locations of the '{scheme}' scheme are not supported yet; "
            "use a local directory.",
            code="StorageLocationNotSupported",
        )
    raise StorageLocationError(
        "Storage Location is not valid: give an absolute path or a file:// URL."
    )


__all__ = ["StorageError", "StorageLocationError", "Target", "Upload", "resolve_target"]
