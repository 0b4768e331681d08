"""The log: stdlib logging everywhere (`logging.getLogger(__name__)`), set up here once.

Every record carries the ids of what it concerns (`request_id`, `operation_id`, `caller`,
`subject`), taken from context variables that the request pipeline (request id),
authentication (the caller: the token's subject) and the export engine (the operation, and its
subject: the person whose data it exports or erases) set; asyncio tasks and `to_thread` copy
them, so a line logged anywhere below a request or an export run names it. A line may add
fields of its own (`extra={"fields": {...}}`: the access log's method, path, status and
duration), which JSON lines carry as fields. On a terminal lines are text; else
(a container, a service manager, a file) one JSON object per line, for a log pipeline.

The JSON is written with orjson, already a dependency: the formatter is a dozen lines, which a
logging library (python-json-logger, structlog) would not shorten. Log lines hold ids, never
personal data: messages are written that way, and `redact.install()` (redact.py), which the CLI
calls with `configure_logging`, takes secrets out of every record before any formatter sees it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from datapolicy.config import LoggingConfig

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
operation_id: ContextVar[str | None] = ContextVar("operation_id", default=None)
caller: ContextVar[str | None] = ContextVar("caller", default=None)
subject: ContextVar[str | None] = ContextVar("subject", default=None)
_CONTEXT = (
    ("request_id", request_id),
    ("operation_id", operation_id),
    ("caller", caller),
    ("subject", subject),
)

FORMAT_ENV = "DATAPOLICY_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"


class ContextFilter(logging.Filter):
    """Puts the context's ids on every record (None where there is none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in _CONTEXT:
            setattr(record, name, variable.get())
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message [request_id=... operation_id=... caller=... subject=...]`
    (a line's own fields are in its message, for people)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{name}={value}"
            for name, _ in _CONTEXT
            if (value := getattr(record, name, None)) is not None
        )
        record.context = f" [{ids}]" if ids else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the context's ids
    where set, the line's own `fields`, and the traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, _ in _CONTEXT:
            if (value := getattr(record, name, None)) is not None:
                line[name] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update((k, v) for k, v in fields.items() if k not in line)
        if record.exc_info:
            # exc_text: the traceback as redact.install() left it, when it did.
            line["exception"] = record.exc_text or self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def wants_json(config: LoggingConfig, stream: object) -> bool:
    """JSON unless the format (DATAPOLICY_LOG_FORMAT over [logging] format) says text, or says
    auto and `stream` is a terminal."""
    chosen = os.environ.get(FORMAT_ENV, "").strip().lower() or config.format
    if chosen not in ("auto", "json", "text"):
        chosen = config.format
    if chosen == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (isatty is not None and isatty())
    return chosen == "json"


def configure_logging(config: LoggingConfig, minimum: int = logging.NOTSET) -> None:
    """Route every logger (ours, uvicorn's, the libraries') to one stderr handler in the chosen
    format, with the context filter, at `[logging] level` or `minimum`, whichever is higher.
    Called once per process, by the CLI: `serve` and `worker` log at the configured level, the
    one-shot commands at WARNING, so that their output is not interleaved with the INFO lines
    of what they open (cli/options.py `load_settings`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if wants_json(config, sys.stderr) else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(max(logging.getLevelNamesMapping()[config.level], minimum))
    logging.getLogger("alembic").setLevel(logging.WARNING)


@contextmanager
def operation_context(operation: str, person: str) -> Iterator[None]:
    """Within the block, log lines name this operation and its subject, the person whose data
    it exports or erases (an export thread's job)."""
    tokens = (operation_id.set(operation), subject.set(person))
    try:
        yield
    finally:
        operation_id.reset(tokens[0])
        subject.reset(tokens[1])
