"""The ASGI application: routes under the API root, Graph-style errors, request ids, and the
health checks at the server root (web/health.py)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Router

from datapolicy import tracing
from datapolicy.auth.tokens import TokenValidator
from datapolicy.config import LimitsConfig, MetricsConfig
from datapolicy.engine import ExportService
from datapolicy.errors import DatapolicyError
from datapolicy.scenarios import Scenarios
from datapolicy.store import OperationStore
from datapolicy.web import metadata, openapi, operations, packages, users
from datapolicy.web.audit import RequestAudit
from datapolicy.web.auth import Authentication
from datapolicy.web.console import ConsoleFiles
from datapolicy.web.errors import on_datapolicy_error, on_http_exception
from datapolicy.web.fastpath import EntityReadPath
from datapolicy.web.faultinjection import ScenarioMiddleware
from datapolicy.web.health import DEFAULT_MIN_FREE_BYTES, HealthChecks, Readiness
from datapolicy.web.limits import RequestLimits
from datapolicy.web.metrics import MetricsEndpoint, RequestMetrics
from datapolicy.web.middleware import GraphRequestMiddleware
from datapolicy.web.profile import GraphProfile
from datapolicy.web.proxy import ProxyHeaders
from datapolicy.web.ratelimit import ClientLimits, RateLimiting, budget
from datapolicy.web.scenarios import routes as scenario_routes
from datapolicy.web.tracing import RequestTracing


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
    draining: threading.Event | None = None,
    readiness_min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
) -> Starlette:
    """The app; with `scenarios` (`serve --scenarios`), the test-double controls too: their
    admin routes and, right inside the request ids, the middleware that injects faults. With
    `profile` "graph", Graph's answers where they differ from datapolicy's (web/profile.py).
    `draining`, once set, turns `/readyz` to 503 (server.py sets it on SIGTERM); below
    `readiness_min_free_bytes` free in a storage root it is 503 too (web/health.py)."""
    graph_profile = (
        [Middleware(GraphProfile, storage=exports.context.storage)] if profile == "graph" else []
    )
    # Request metrics just inside the ids (they count its 500s); /metrics before authentication.
    # With metrics off, requests are not timed at all, unless for the access log.
    observing = []
    if metrics.enabled or access_log:
        observing.append(Middleware(RequestMetrics, access_log=access_log))
    if metrics.enabled:
        observing.append(Middleware(MetricsEndpoint, token=metrics.token))
    if tracing.enabled():  # a span per request; nothing at all when tracing is off
        observing.append(Middleware(RequestTracing))
    client_limits = ClientLimits(limits)
    app = Starlette(
        routes=[
            Mount(
                operations.API_ROOT,
                # Graph answers a trailing slash as an unknown resource; it does not redirect.
                app=Router(
                    routes=[
                        *operations.routes,
                        *packages.routes,
                        *users.routes,
                        *metadata.routes,
                        *openapi.routes,
                        *(scenario_routes if scenarios is not None else ()),
                    ],
                    redirect_slashes=False,
                ),
            )
        ],
        # Outermost first: request ids and path cleaning apply to the fast path too, and so
        # does authentication. Probes are answered before authentication: they carry no token;
        # so are the console's static files, which hold no data (web/console.py).
        middleware=[
            # Before anything reads the client's address or the scheme (web/proxy.py).
            *([Middleware(ProxyHeaders, trusted=trusted_proxies)] if trusted_proxies else []),
            Middleware(GraphRequestMiddleware),
            *observing,
            *(
                [Middleware(ScenarioMiddleware, scenarios=scenarios)]
                if scenarios is not None
                else []
            ),
            Middleware(
                HealthChecks,
                readiness=Readiness(
                    store,
                    Path(exports.default_location),
                    audit.log,
                    roots=exports.context.storage.local.roots,
                    min_free_bytes=readiness_min_free_bytes,
                ),
                draining=draining or threading.Event(),
            ),
            Middleware(RequestLimits, limits=limits),  # sizes: refused before the token
            Middleware(ConsoleFiles),
            Middleware(
                Authentication,
                validator=validator,
                audit=audit,
                failures=budget(limits.auth_failure_rate, limits.auth_failure_burst),
                limits=client_limits,  # a 403 spends its client's budget
            ),
            *graph_profile,  # Graph checks the token first
            Middleware(RateLimiting, limits=client_limits),  # per client: needs the principal
            Middleware(EntityReadPath, store=store, audit=audit),
        ],
        exception_handlers={
            DatapolicyError: on_datapolicy_error,
            HTTPException: on_http_exception,
        },
    )
    app.router.redirect_slashes = False
    app.state.store = store
    app.state.exports = exports
    app.state.audit = audit  # web/audit.py: the routes' audit entries
    app.state.limits = limits
    app.state.scenarios = scenarios
    return app
