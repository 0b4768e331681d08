"""The export engine: sources, packaging, storage targets and the workers that run exports.

It knows nothing of HTTP: the web layer and the CLI both drive it through `ExportService` (start
exports) and `Worker` (run them).

Its names are loaded when first used (lazy.py), not when any module of the package is
imported: `datapolicy verify` needs only the package reader (engine/verify.py), and importing
it used to import every source, the directory and the workers through this file (0.5 s of CPU
a run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from datapolicy.lazy import lazy_names

if TYPE_CHECKING:  # the same names, for type checkers: loaded by __getattr__ at run time
    from datapolicy.engine.context import build_context
    from datapolicy.engine.directory import User, UserDirectory
    from datapolicy.engine.service import ExportService
    from datapolicy.engine.worker import ExportContext, Worker

# The data directory's places for the engine's files (engine/context.py).
EXPORTS_DIR = "exports"
SPOOL_DIR = "spool"
ERASURE_SECRET_FILE = "erasure-secret.key"

__all__ = ["ExportContext", "ExportService", "User", "UserDirectory", "Worker", "build_context"]

__getattr__ = lazy_names(
    __name__,
    {
        "ExportContext": "datapolicy.engine.worker",
        "ExportService": "datapolicy.engine.service",
        "User": "datapolicy.engine.directory",
        "UserDirectory": "datapolicy.engine.directory",
        "Worker": "datapolicy.engine.worker",
        "build_context": "datapolicy.engine.context",
    },
)
