"""A service whose configuration has `[erasure] approval` set as a test asks (docs/erasure.md,
"Approval"), on the erasure tests' shop (erasureshop.py). For the API and CLI tests of
`approval`."""

from __future__ import annotations

from pathlib import Path

from conftest import AppService, configured_app
from erasureshop import erasure_config


def serve(root: Path, approval: str, *args: str) -> AppService:
    root.mkdir(parents=True, exist_ok=True)
    return configured_app(root, erasure_config(root, approval), "--workers", "0", *args)
