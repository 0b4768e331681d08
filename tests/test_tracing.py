"""OpenTelemetry tracing (tracing.py, web/middleware/tracing.py), in-process with the SDK's
in-memory exporter: a request is a server span named by its route template and carrying its request
id; the export run it started is a span of its own trace, linked to that request's span."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from databases import SQLITE, store_database
from datapolicy import tracing
from datapolicy.config import EngineConfig, LocalStorageConfig, StorageConfig, TracingConfig
from datapolicy.engine import ExportService
from datapolicy.engine.worker import ExportContext, Worker
from datapolicy.model import OperationStatus
from datapolicy.store import OperationStore
from datapolicy.store.queue import OperationQueue
from datapolicy.web.middleware.pipeline import RequestPipeline
from datapolicy.web.middleware.tracing import REQUEST_ID, RequestTracing
from datapolicy.web.routes.table import Route as TableRoute
from datapolicy.web.routes.table import RouteTable

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, for this test only."""
    monkeypatch.setattr(tracing, "_tracer", None)  # restored to "off" afterwards
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure_tracing(TracingConfig(enabled=True), provider)
    yield exporter
    provider.shutdown()


async def test_an_export_run_is_linked_to_the_request_that_started_it(
    spans: InMemorySpanExporter, tmp_path: Path
):
    """The request's server span: named by route template, with the request id and status and
    no query string (it may hold personal data). The export run: a span of its own trace with
    the operation id, linked to the request's span; no spans per ASGI message."""
    with store_database(SQLITE, tmp_path / "store") as database:
        store = OperationStore(database)
        context = ExportContext(
            (), None, StorageConfig(local=LocalStorageConfig(roots=(tmp_path,)))
        )
        exports = ExportService(store, context, str(tmp_path / "exports"))

        async def start(request: Request) -> JSONResponse:
            # As the API's routes start an export: the engine's entry point, in a thread.
            operation, _ = await run_in_threadpool(exports.start, "person-1", None)
            return JSONResponse({"id": operation.id}, status_code=201)

        app = Starlette(
            routes=[
                Route("/v1.0/dataPolicyOperations/{operation_id}/start", start, methods=["POST"])
            ],
            middleware=[
                Middleware(
                    RequestPipeline,
                    table=RouteTable(
                        [TableRoute("/dataPolicyOperations/{operation_id}/start", {"POST": start})]
                    ),
                    tracing=RequestTracing(),
                )
            ],
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post(
                "/v1.0/dataPolicyOperations/x/start",
                params={"$filter": "mail eq 'a@b.example'"},
                headers={"traceparent": f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"},
            )
        assert response.status_code == 201
        operation_id = response.json()["id"]
        worker = Worker(OperationQueue(database), context, EngineConfig(workers=1))
        assert worker.run_once()
        assert store.get(operation_id).status is OperationStatus.COMPLETE

    # Tracing is on for the whole process while this test runs: a thread another test left
    # behind may add spans of its own, so these are picked by their request and operation ids.
    finished = spans.get_finished_spans()
    [request] = [
        span
        for span in finished
        if span.kind is SpanKind.SERVER
        and (span.attributes or {}).get(REQUEST_ID) == response.headers["request-id"]
    ]
    [export] = [
        span
        for span in finished
        if span.name == "export"
        and (span.attributes or {}).get(tracing.OPERATION_ID) == operation_id
    ]
    route = "/v1.0/dataPolicyOperations/{operation_id}/start"
    assert request.name == f"POST {route}"
    assert request.attributes["http.route"] == route
    assert request.attributes[REQUEST_ID] == response.headers["request-id"]
    assert request.attributes["http.response.status_code"] == 201
    assert request.attributes["url.path"] == "/v1.0/dataPolicyOperations/x/start"
    assert not [span for span in finished if "a@b.example" in str(dict(span.attributes or {}))]
    assert request.parent is not None  # the caller's traceparent was continued
    assert request.context.trace_id == int(CALLER_TRACE, 16)
    assert export.parent is None  # a trace of its own: it runs later, maybe more than once
    assert export.context.trace_id != request.context.trace_id
    assert [link.context for link in export.links] == [request.context]
    traces = {request.context.trace_id, export.context.trace_id}
    assert [span for span in finished if span.context.trace_id in traces] == [request, export]


def test_with_tracing_off_an_export_run_makes_no_span(tmp_path: Path):
    """Off (the default), `export_span` is a null context: nothing of OpenTelemetry runs."""
    assert not tracing.enabled()
    with tracing.export_span("an-operation"):
        pass
    tracing.remember_start("an-operation")
    assert "an-operation" not in tracing._pending
