"""The ASGI application: the route table's routes (web/routes/table.py) behind the request
pipeline (web/middleware/pipeline.py), Graph-style errors, and the server root's probes, `/metrics`
and console files."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp

from datapolicy import tracing
from datapolicy.auth.tokens import TokenValidator
from datapolicy.config import LimitsConfig, MetricsConfig
from datapolicy.engine import ExportService
from datapolicy.errors import DatapolicyError
from datapolicy.scenarios import Scenarios
from datapolicy.store import OperationStore
from datapolicy.store.operations import GRAPH_PROFILE
from datapolicy.web.errors import on_datapolicy_error, on_http_exception
from datapolicy.web.hot_path.fastpath import EntityReadPath
from datapolicy.web.middleware.audit import RequestAudit
from datapolicy.web.middleware.auth import Authentication
from datapolicy.web.middleware.cors import CrossOrigin
from datapolicy.web.middleware.limits import RequestLimits
from datapolicy.web.middleware.metrics import RequestMetrics
from datapolicy.web.middleware.pipeline import RequestPipeline
from datapolicy.web.middleware.proxy import ProxyHeaders
from datapolicy.web.middleware.ratelimit import ClientLimits, budget
from datapolicy.web.middleware.tracing import RequestTracing
from datapolicy.web.routes.table import API_ROUTES, RouteTable, server_root_routes
from datapolicy.web.server_root.console import ConsoleFiles
from datapolicy.web.server_root.health import (
    DEFAULT_MIN_FREE_BYTES,
    HealthChecks,
    Readiness,
)
from datapolicy.web.server_root.metrics import MetricsEndpoint
from datapolicy.web.test_double.faultinjection import ScenarioMiddleware
from datapolicy.web.test_double.profile import ANSWERED_HERE, GraphProfileMiddleware


class ServiceApp(Starlette):
    """Starlette with the request pipeline outermost, in place of Starlette's own
    `ServerErrorMiddleware`: the pipeline answers an escaping exception itself (Graph's 500
    body, with the ids), so on the read fast path `send` is wrapped once."""

    def __init__(self, pipeline: Callable[[ASGIApp], ASGIApp], **kwargs: Any):
        super().__init__(**kwargs)
        self.pipeline = pipeline

    def build_middleware_stack(self) -> ASGIApp:
        handlers = dict(self.exception_handlers)
        return self.pipeline(ExceptionMiddleware(self.router, handlers=handlers))


def create_app(
    store: OperationStore,
    exports: ExportService,
    validator: TokenValidator,
    limits: LimitsConfig,
    *,
    audit: RequestAudit,
    metrics: MetricsConfig = MetricsConfig(),  # noqa: B008 (frozen: one shared default is fine)
    access_log: bool = False,
    scenarios: Scenarios | None = None,
    profile: str = "datapolicy",
    trusted_proxies: Sequence[IPv4Network | IPv6Network] = (),
    cors_origins: Sequence[str] = (),
    draining: threading.Event | None = None,
    readiness_min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
) -> Starlette:
    """The app; with `scenarios` (`serve --scenarios`), the test-double controls too: their
    admin routes and the scenario middleware that injects faults. With `profile` "graph",
    Graph's answers where they differ from datapolicy's (web/test_double/profile.py). `draining`,
    once set, turns `/readyz` to 503 (server.py sets it on SIGTERM); below
    `readiness_min_free_bytes` free in a storage root it is 503 too (web/server_root/health.py).
    Pages from `cors_origins` (`*`: any) may call the API cross-origin (web/middleware/cors.py)."""
    if profile == "graph":  # its queries compare what its answers show (store/operations.py)
        store = OperationStore(store.database, store.clock, view=GRAPH_PROFILE)
    health = HealthChecks(
        Readiness(
            store,
            Path(exports.default_location),
            audit.log,
            roots=exports.context.storage.local.roots,
            min_free_bytes=readiness_min_free_bytes,
        ),
        draining or threading.Event(),
    )
    root_routes = server_root_routes(
        health,
        ConsoleFiles(),
        MetricsEndpoint(metrics.token) if metrics.enabled else None,
    )
    table = RouteTable([*root_routes, *API_ROUTES], test_doubles=scenarios is not None)
    client_limits = ClientLimits(limits)
    authentication = Authentication(
        validator,
        audit,
        failures=budget(limits.auth_failure_rate, limits.auth_failure_burst),
        limits=client_limits,  # a 403 spends its client's budget
    )
    pipeline = functools.partial(
        RequestPipeline,
        table=table,
        proxies=ProxyHeaders(trusted_proxies) if trusted_proxies else None,
        # With metrics off, requests are not timed at all, unless for the access log.
        metrics=RequestMetrics(access_log) if metrics.enabled or access_log else None,
        cors=(  # web/middleware/cors.py
            CrossOrigin(cors_origins, ANSWERED_HERE if profile == "graph" else {})
            if cors_origins
            else None
        ),
        tracing=RequestTracing() if tracing.enabled() else None,  # nothing when tracing is off
        scenarios=(
            functools.partial(ScenarioMiddleware, scenarios=scenarios)
            if scenarios is not None
            else None
        ),
        limits=RequestLimits(limits),
        authentication=authentication,
        profile=(
            functools.partial(GraphProfileMiddleware, storage=exports.context.storage)
            if profile == "graph"
            else None
        ),
        rate_limits=client_limits,
        fast_path=EntityReadPath(store, audit),
    )
    app = ServiceApp(
        pipeline,
        routes=table.api_routes(),
        exception_handlers={
            DatapolicyError: on_datapolicy_error,
            HTTPException: on_http_exception,
        },
    )
    app.router.redirect_slashes = False
    app.router.default = table.answer_unknown_path  # a path under no API root: 404
    app.state.store = store
    app.state.exports = exports
    app.state.audit = audit  # web/middleware/audit.py: the routes' audit entries
    app.state.authentication = authentication  # the routes' own 403s are accounted by it
    app.state.limits = limits
    app.state.profile = profile  # `/users` applies Graph's advanced-query rule under "graph"
    app.state.scenarios = scenarios
    return app
