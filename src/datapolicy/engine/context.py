"""What the workers export with, built from the configuration: `build_context`."""

from __future__ import annotations

from pathlib import Path

from datapolicy.config import Config
from datapolicy.engine import ERASURE_SECRET_FILE, EXPORTS_DIR, SPOOL_DIR
from datapolicy.engine.directory import UserDirectory
from datapolicy.engine.report import ReportLabels
from datapolicy.engine.sources.base import Source
from datapolicy.engine.sources.files import FileSource
from datapolicy.engine.sources.sql import SqlSource
from datapolicy.engine.worker import ExportContext


def build_context(config: Config, data_dir: Path) -> ExportContext:
    """Sources, directory and permitted local roots from the configuration.

    `<data-dir>/exports` is always a permitted local root: the embedded default's place for
    packages. Packages for presigned S3 URLs wait in `<data-dir>/spool` unless configured."""
    sources: list[Source] = [SqlSource(s) for s in config.sources.sql]
    sources += [FileSource(f) for f in config.sources.files]
    directory = UserDirectory(config.directory) if config.directory is not None else None
    roots = (*config.storage.local.roots, (data_dir / EXPORTS_DIR).absolute())
    local = config.storage.local.model_copy(update={"roots": roots})
    presigned = config.storage.s3_presigned
    if presigned.spool_dir is None:
        spool_dir = (data_dir / SPOOL_DIR).absolute()
        presigned = presigned.model_copy(update={"spool_dir": spool_dir})
    storage = config.storage.model_copy(update={"local": local, "s3_presigned": presigned})
    erasure = config.erasure
    secret = None if erasure is None else erasure_secret_file(config, data_dir)
    return ExportContext(sources, directory, storage, ReportLabels.of(config), erasure, secret)


def erasure_secret_file(config: Config, data_dir: Path) -> Path:
    """Where the erasure secret is: `[erasure] hash_secret_file`, else in the data directory."""
    configured = None if config.erasure is None else config.erasure.hash_secret_file
    return configured or (data_dir / ERASURE_SECRET_FILE).absolute()
