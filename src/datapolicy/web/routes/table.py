"""Every route the service answers, declared once, with what the request pipeline needs to know
about it: its methods and their handlers, the permission it needs (the matrix documented in
docs/security.md), whether it is public, its metrics name and whether it is rate limited.

Adding a route is one entry here plus its handler. The pipeline (web/middleware/pipeline.py)
looks each request's path up here once and puts the `RouteMatch` in the scope (`ROUTE`);
authentication, rate limits, metrics, tracing, the read fast path, the Graph profile and the
fault injector read it there instead of matching URLs themselves, and Starlette's router is built
from the same entries (`RouteTable.api_router`).

Two kinds of route:
- API routes, under the API root (`/v1.0`): Starlette endpoints by method, behind
  authentication and the client's rate limits. Paths here are relative to the API root. Any
  path that no route matches, and any method a route lacks, needs a valid token but no
  permission: the app then answers 404 or 405, and a caller without a token learns nothing
  about which routes exist. HEAD needs what GET does.
- Server-root routes (`root=True`, `server_root_routes`): the probes, `/metrics` and the
  console's files. Each is one ASGI app answered by the pipeline before limits and
  authentication (probers and scrapers carry no Graph token; the console's files hold no data),
  never rate limited. Their apps are made per app (the probes need its store), so they are
  declared by a function of those apps.

Paths are Starlette templates with at most one parameter, one whole segment (`{operation_id}`);
`keys=True` says it is an entity key, which an OData system segment (`$count`, `$value`) never
is. `prefix=True` makes a route match everything below its path (static files). Under the API
root that is a Starlette `Mount`, which serves only what is below its path, so the path itself
is an unknown path; at the server root the route matches its own path as well, which its app
answers (the console redirects `/console` to `/console/`).

A look-up agrees with Starlette's router built from the same entries (tests/web/test_route_table.py
compares the two on generated paths): a route's path parameter is one whole, non-empty segment,
and a path under the API root with a line feed matches nothing, because Starlette's `Mount` of
the API root does not match one (its pattern's `.` stops at a line feed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from starlette.routing import BaseRoute, Mount, Router
from starlette.routing import Route as StarletteRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp
from swagger_ui.utils import SWAGGER_UI_PY_ROOT

from datapolicy.auth.permissions import (
    ANY_TOKEN,
    ERASE,
    EXPORT,
    PUBLIC,
    READ_USERS,
    SCENARIOS,
    Requirement,
)
from datapolicy.model import ENTITY_SET
from datapolicy.web.routes import batch, metadata, openapi, operations, packages, users
from datapolicy.web.routes.operations import API_ROOT
from datapolicy.web.routes.routing import Endpoint, KeyRoute, by_method
from datapolicy.web.test_double import scenarios
from datapolicy.web.test_double.scenarios import ADMIN_ROOT

#: The scope key of a request's `RouteMatch` (set by the pipeline before anything reads it).
ROUTE = "datapolicy.route"
#: The metrics name of a request no served route matches: labels stay bounded.
OTHER = "other"
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_UNDER_API_ROOT = API_ROOT + "/"

# The server root's paths (`server_root_routes`).
HEALTHZ = "/healthz"
READYZ = "/readyz"
METRICS = "/metrics"
CONSOLE = "/console"


@dataclass(frozen=True, eq=False)
class Route:
    """One route. `endpoints`: method -> handler (API routes); `app`: an ASGI app answering every
    method (server-root routes, static files). `test_double`: served only under `serve
    --scenarios` (its permission holds either way). A route with neither endpoints nor app is
    declared for the pipeline only (the Graph profile's `/me/exportPersonalData`)."""

    path: str
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    app: ASGIApp | None = None
    permission: str | None = None
    public: bool = False
    root: bool = False
    keys: bool = False
    prefix: bool = False
    test_double: bool = False
    metrics_name: str | None = None  # default: the full template

    @property
    def template(self) -> str:
        """The path template from the server root."""
        return self.path if self.root else API_ROOT + self.path

    @cached_property
    def series_name(self) -> str:
        """The name of the route's requests in the metrics (kept: read by every request)."""
        return self.metrics_name or self.template + ("/{path}" if self.prefix else "")

    @cached_property
    def methods(self) -> frozenset[str]:
        """The methods the route answers: its endpoints' (HEAD with GET), or GET and HEAD for
        an app of static files under the API root; none for a route declared for the pipeline
        only (CORS preflights offer these: web/middleware/cors.py)."""
        if self.app is not None:
            return frozenset({"GET", "HEAD"})
        return frozenset({*self.endpoints, *(("HEAD",) if "GET" in self.endpoints else ())})

    @property
    def rate_limited(self) -> bool:
        """Whether requests spend their client's rate budget: the API's (public routes by the
        caller's address), never the server root's."""
        return not self.root

    @cached_property
    def _needed(self) -> Requirement:
        return PUBLIC if self.public else Requirement(permission=self.permission)

    def requirement(self, method: str) -> Requirement:
        """What `method` on this route must show."""
        if self.public or ("GET" if method == "HEAD" else method) in self.endpoints:
            return self._needed
        return ANY_TOKEN  # then 405


class RouteMatch(NamedTuple):
    """A request's route (None: no route) and the value of its path parameter, if it has one.
    `served`: the route answers in this app (false for test-double routes without scenarios).
    `unknown_api_path`: no route, but the path is under the API root."""

    route: Route | None
    key: str | None = None
    served: bool = False
    unknown_api_path: bool = False

    @property
    def under_api_root(self) -> bool:
        """Whether the path is under the API root (a request to the Graph API, known or not)."""
        route = self.route
        return self.unknown_api_path if route is None else not route.root

    @property
    def metrics_name(self) -> str:
        route = self.route
        if route is None or not self.served:
            return OTHER
        return route.series_name

    def requirement(self, method: str) -> Requirement:
        route = self.route
        return ANY_TOKEN if route is None else route.requirement(method)


NO_ROUTE = RouteMatch(None)
NO_API_ROUTE = RouteMatch(None, unknown_api_path=True)


def _admin(path: str, **endpoints: Endpoint) -> Route:
    return Route(ADMIN_ROOT + path, endpoints, permission=SCENARIOS, test_double=True)


COUNT = Route(f"/{ENTITY_SET}/$count", {"GET": operations.count_operations}, permission=EXPORT)
ENTITY = Route(
    f"/{ENTITY_SET}/{{operation_id}}",
    {
        "GET": operations.get_operation,
        "PATCH": operations.update_operation,
        "DELETE": operations.delete_operation,
    },
    permission=EXPORT,
    keys=True,
)
USER_EXPORT = Route(
    "/users/{user_id}/exportPersonalData",
    {"POST": users.export_personal_data},
    permission=EXPORT,
)
USER_ERASE = Route(
    "/users/{user_id}/erasePersonalData",
    {"POST": users.erase_personal_data},
    permission=ERASE,
)
# Graph's export of the caller: answered by the Graph profile (web/test_double/profile.py) as
# USER_EXPORT for the token's subject; any token, as an unknown path (the profile checks the
# permission).
ME_EXPORT = Route("/me/exportPersonalData")


def server_root_routes(
    health: ASGIApp, console: ASGIApp, metrics: ASGIApp | None = None
) -> tuple[Route, ...]:
    """The server root's routes, for the apps that answer them: `health` both probes
    (web/server_root/health.py), `console` the console's files, `metrics` `/metrics` (None when
    metrics are off: `/metrics` is then an unknown path like any other, after authentication)."""
    return (
        Route(HEALTHZ, app=health, root=True),
        Route(READYZ, app=health, root=True),
        *(() if metrics is None else (Route(METRICS, app=metrics, root=True),)),
        Route(CONSOLE, app=console, root=True, prefix=True, metrics_name=OTHER),
    )


API_ROUTES: tuple[Route, ...] = (
    Route(
        f"/{ENTITY_SET}",
        {"GET": operations.list_operations, "POST": operations.create_operation},
        permission=EXPORT,
    ),
    COUNT,
    ENTITY,
    Route(
        f"/{ENTITY_SET}/{{operation_id}}/package",
        {"GET": packages.download_package},
        permission=EXPORT,
        keys=True,
    ),
    Route(
        f"/{ENTITY_SET}/{{operation_id}}/approve",
        {"POST": operations.approve_operation},
        permission=ERASE,
        keys=True,
    ),
    Route("/users", {"GET": users.list_users}, permission=READ_USERS),
    Route("/users/$count", {"GET": users.count_users}, permission=READ_USERS),
    Route("/users/{user_id}", {"GET": users.get_user}, permission=READ_USERS, keys=True),
    USER_EXPORT,
    USER_ERASE,
    ME_EXPORT,
    # Graph's JSON batching: any valid token; each of its requests is checked as if sent alone.
    Route("/$batch", {"POST": batch.post_batch}),
    # The description of the API is public, as Graph's `$metadata` is.
    Route("/$metadata", {"GET": metadata.metadata}, public=True),
    Route("/openapi.yaml", {"GET": openapi.openapi_yaml}, public=True),
    Route("/openapi.json", {"GET": openapi.openapi_json}, public=True),
    Route("/docs", {"GET": openapi.docs_page}, public=True),
    Route(  # Swagger UI's scripts and styles
        "/docs/assets",
        app=StaticFiles(directory=f"{SWAGGER_UI_PY_ROOT}/static"),
        public=True,
        prefix=True,
    ),
    # The scenario admin API (web/test_double/scenarios.py; `serve --scenarios`).
    _admin("", GET=scenarios.overview),
    _admin(
        "/faults",
        GET=scenarios.list_faults,
        POST=scenarios.add_fault,
        DELETE=scenarios.clear_faults,
    ),
    _admin("/faults/{rule_id}", DELETE=scenarios.remove_fault),
    _admin("/time", GET=scenarios.get_time, PUT=scenarios.set_time),
    _admin("/exportFailures", GET=scenarios.list_failures, POST=scenarios.add_failure),
    _admin("/operations/{operation_id}/advance", POST=scenarios.advance),
    _admin("/requests", GET=scenarios.list_requests, DELETE=scenarios.clear_requests),
    _admin("/reset", POST=scenarios.reset),
    _admin("/snapshots", GET=scenarios.list_snapshots),
    _admin("/snapshots/{name}", PUT=scenarios.take_snapshot),
    _admin("/snapshots/{name}/restore", POST=scenarios.restore_snapshot),
)


class RouteTable:
    """The routes of one app, looked up by path. Runs on every request, so a look-up is a
    dictionary get or two (by the whole path; by where the parameter is and the segments
    around it), not a match against each template."""

    def __init__(self, routes: Iterable[Route], *, test_doubles: bool = False):
        self.routes = tuple(routes)
        self.test_doubles = test_doubles
        self._exact: dict[str, RouteMatch] = {}
        self._prefixes: list[tuple[str, Route]] = []
        self._by_position: dict[tuple[int, tuple[str, ...]], Route] = {}
        for route in self.routes:
            served = self._served(route)
            segments = route.template.split("/")
            parameters = [i for i, part in enumerate(segments) if part.startswith("{")]
            if len(parameters) > 1:
                raise ValueError(f"{route.template}: at most one path parameter")
            if parameters:
                position = parameters[0]
                rest = (*segments[:position], *segments[position + 1 :])
                self._by_position[(position, rest)] = route
            elif route.root or not route.prefix:
                self._exact[route.template] = RouteMatch(route, None, served)
            if route.prefix:
                self._prefixes.append((route.template + "/", route))
        self._positions = sorted({position for position, _ in self._by_position})
        self._prefix_tuple = tuple(prefix for prefix, _ in self._prefixes)

    def _served(self, route: Route) -> bool:
        if route.test_double and not self.test_doubles:
            return False
        return bool(route.endpoints) or route.app is not None

    def match(self, path: str) -> RouteMatch:
        """The route `path` addresses (`NO_ROUTE` if none)."""
        found = self._exact.get(path)
        if found is not None:
            return found
        if "\n" in path and path.startswith(_UNDER_API_ROOT):
            return NO_API_ROUTE  # what Starlette's Mount of the API root does (above)
        segments = path.split("/")
        for position in self._positions:
            if position < len(segments) and (key := segments[position]):
                route = self._by_position.get(
                    (position, (*segments[:position], *segments[position + 1 :]))
                )
                if route is not None and not (route.keys and key[0] == "$"):
                    return RouteMatch(route, key, self._served(route))
        if path.startswith(self._prefix_tuple):
            for prefix, route in self._prefixes:
                if path.startswith(prefix):
                    return RouteMatch(route, path[len(prefix) :], self._served(route))
        return NO_API_ROUTE if path.startswith(_UNDER_API_ROOT) else NO_ROUTE

    def api_router(self) -> Mount:
        """Starlette's router of the API routes this app serves, mounted at the API root."""
        built: list[BaseRoute] = []
        for route in self.routes:
            if route.root or not self._served(route) or not (route.endpoints or route.app):
                continue
            if route.app is not None:
                built.append(Mount(route.path, app=route.app))
            else:
                route_class = KeyRoute if route.keys else StarletteRoute
                built.append(by_method(route.path, route_class, **route.endpoints))
        # Graph answers a trailing slash as an unknown resource; it does not redirect.
        return Mount(API_ROOT, app=Router(routes=built, redirect_slashes=False))
