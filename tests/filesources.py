"""File sources and the packages made from them, for tests: the real exporter, into memory."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from datapolicy.config import FileSourceConfig
from datapolicy.engine.directory import User
from datapolicy.engine.exporter import Progress, export
from datapolicy.engine.sources.files import FileSource
from datapolicy.model import Operation, OperationStatus


def file_source(template: str, name: str = "documents") -> FileSource:
    return FileSource(FileSourceConfig(name=name, path=template))


def export_in_memory(files: FileSource, user_id: str) -> bytes:
    """The user's package, as the worker's exporter writes it."""
    now = datetime.now(UTC)
    operation = Operation("op", user_id, OperationStatus.RUNNING, 0, None, now, None, 1)
    stream = io.BytesIO()
    export(operation, User(user_id), [files], stream, Progress(), lambda: now)
    return stream.getvalue()
