"""OpenTelemetry tracing of a request through to its export, when `[tracing] enabled`.

Off by default, and then nothing of OpenTelemetry is imported and nothing costs: the request
pipeline has no tracing step and `export_span` is a null context. On, it needs the `otel` extra
(`pip install 'datapolicy[otel]'`): spans go to an OTLP/HTTP collector (`[tracing] endpoint`,
else OpenTelemetry's own OTEL_EXPORTER_OTLP_* settings) and, with `console`, to stdout.

- Each request is a server span (`web/middleware/tracing.py`), named by route template, with the
  request id and no query string, continuing the caller's `traceparent` if it sent one.
- Each export run is a span of its own trace, `export`, with the operation id, *linked* to the
  span of the request that started the operation: a run happens later and maybe more than once
  (retries), so it is not a child of the request. The link is kept in memory from the start to
  the first run, so it exists when the API and the export threads share a process (`datapolicy
  serve`, the default); a separate `datapolicy worker` process's runs carry the operation id
  only, which is how to find the request in the tracing backend.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from datapolicy.config import ConfigError, TracingConfig

OPERATION_ID = "datapolicy.operation_id"
MAX_PENDING_LINKS = 10_000  # starts waiting for their first run; the oldest are forgotten

_tracer: Any = None  # the OpenTelemetry tracer, once tracing is configured
_pending: OrderedDict[str, Any] = OrderedDict()  # operation id -> the starting span's context
_pending_lock = threading.Lock()


def enabled() -> bool:
    return _tracer is not None


def configure_tracing(config: TracingConfig, provider: Any = None) -> None:
    """Set up the tracer (once per process), or nothing when tracing is off. `provider`: a
    TracerProvider of the caller's (tests: one with an in-memory exporter). ConfigError when
    tracing is on without the `otel` extra installed."""
    global _tracer
    if not config.enabled:
        return
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise ConfigError(
            "[tracing] enabled needs OpenTelemetry: pip install 'datapolicy[otel]'"
        ) from None
    if provider is None:
        provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}))
        if config.endpoint is not None or not config.console:
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(config.endpoint)))
        if config.console:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("datapolicy")


def _otlp_exporter(endpoint: str | None) -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigError(
            "[tracing] needs the OTLP exporter: pip install 'datapolicy[otel]'"
        ) from None
    return OTLPSpanExporter() if endpoint is None else OTLPSpanExporter(endpoint=endpoint)


def tracer() -> Any:
    return _tracer


def remember_start(operation_id: str) -> None:
    """Note the current span (the request's) as the one that started `operation_id`, for the
    export run's link."""
    if _tracer is None:
        return
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return
    with _pending_lock:
        _pending[operation_id] = context
        while len(_pending) > MAX_PENDING_LINKS:
            _pending.popitem(last=False)


@contextmanager
def export_span(operation_id: str) -> Iterator[None]:
    """The span of one export run (a null context when tracing is off)."""
    if _tracer is None:
        yield
        return
    from opentelemetry import context, trace

    with _pending_lock:
        started_by = _pending.get(operation_id)  # kept: a retry links to it too
    links = [] if started_by is None else [trace.Link(started_by)]
    # A root span of its own trace: the export thread has no request in its context anyway.
    with _tracer.start_as_current_span(
        "export",
        context=context.Context(),
        kind=trace.SpanKind.CONSUMER,
        links=links,
        attributes={OPERATION_ID: operation_id},
    ):
        yield
