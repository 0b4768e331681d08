"""The ASGI application: routes under the API root, Graph-style errors, request ids, and the
health checks at the server root (web/health.py)."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Router

from datapolicy.auth.tokens import TokenValidator
from datapolicy.engine import ExportService
from datapolicy.errors import DatapolicyError
from datapolicy.store import OperationStore
from datapolicy.web import metadata, openapi, operations, users
from datapolicy.web.auth import Authentication
from datapolicy.web.errors import on_datapolicy_error, on_http_exception
from datapolicy.web.fastpath import EntityReadPath
from datapolicy.web.health import HealthChecks, Readiness
from datapolicy.web.middleware import GraphRequestMiddleware


def create_app(
    store: OperationStore, exports: ExportService, validator: TokenValidator
) -> Starlette:
    app = Starlette(
        routes=[
            Mount(
                operations.API_ROOT,
                # Graph answers a trailing slash as an unknown resource; it does not redirect.
                app=Router(
                    routes=[
                        *operations.routes,
                        *users.routes,
                        *metadata.routes,
                        *openapi.routes,
                    ],
                    redirect_slashes=False,
                ),
            )
        ],
        # Outermost first: request ids and path cleaning apply to the fast path too, and so
        # does authentication. Probes are answered before authentication: they carry no token.
        middleware=[
            Middleware(GraphRequestMiddleware),
            Middleware(HealthChecks, readiness=Readiness(store, Path(exports.default_location))),
            Middleware(Authentication, validator=validator),
            Middleware(EntityReadPath, store=store),
        ],
        exception_handlers={
            DatapolicyError: on_datapolicy_error,
            HTTPException: on_http_exception,
        },
    )
    app.router.redirect_slashes = False
    app.state.store = store
    app.state.exports = exports
    return app
