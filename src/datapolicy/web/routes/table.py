"""Every route the service answers, declared once, with what the request pipeline needs to know
about it: its methods and their handlers, the permission it needs (the matrix documented in
docs/security.md), whether it is public, its metrics name and whether it is rate limited.

Adding a route is one entry here plus its handler. The pipeline (web/middleware/pipeline.py)
looks each request's path up here once and puts the `RouteMatch` in the scope (`ROUTE`);
authentication, rate limits, metrics, tracing, the read fast path, the Graph profile and the
fault injector read it there instead of matching URLs themselves, and Starlette's router is built
from the same entries (`RouteTable.api_router`).

Two kinds of route:
- API routes, under each API root (`/v1.0`, and `/beta`, which serves the same API:
  web/routes/roots.py): Starlette endpoints by method, behind authentication and the client's
  rate limits. Paths here are relative to the API root; the root a request came in on is its
  match's `api_root`, which its links start with. Any path that no route matches, and any
  method a route lacks, needs a valid token but no permission: the app then answers Graph's
  400 "Resource not found for the segment 'x'." (naming the first segment no route has there:
  `unknown_segment`) or 405, and a caller without a token learns nothing about which routes
  exist. HEAD needs what GET does.
- Server-root routes (`root=True`, `server_root_routes`): the probes, `/metrics` and the
  console's files. Each is one ASGI app answered by the pipeline before limits and
  authentication (probers and scrapers carry no Graph token; the console's files hold no data),
  never rate limited. Their apps are made per app (the probes need its store), so they are
  declared by a function of those apps.

Paths are Starlette templates with at most one parameter, one whole segment (`{operation_id}`).
A route may have `aliases`, other paths to the same route with the same permission, handler and
metrics name (Graph's namespace-qualified action names, `microsoft.graph.exportPersonalData`).
`keys=True` says the parameter is an entity key: an OData system segment (`$count`, `$value`)
never is one, and the key may also be written in parentheses after its entity set, as an OData
string literal (`dataPolicyOperations('id')`, a quote inside doubled: `('O''Brien')`), in every
path of the route. `prefix=True` makes a route match everything below its path (static files).
Under the API root that is a Starlette `Mount`, which serves only what is below its path, so the
path itself is an unknown path; at the server root the route matches its own path as well, which
its app answers (the console redirects `/console` to `/console/`).

A look-up agrees with Starlette's router built from the same entries (tests/web/test_route_table.py
compares the two on generated paths): a route's path parameter is one whole, non-empty segment
(or a non-empty quoted literal in parentheses: the `odatakey` convertor, web/routes/routing.py),
which may hold a line feed, and a line feed after a route's path makes another path (Starlette's
patterns are made to match whole paths: routing.py `WholePathRoute`, `WholePathMount`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
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
from datapolicy.web.errors import HTTPError
from datapolicy.web.routes import batch, metadata, openapi, operations, packages, users
from datapolicy.web.routes.roots import API_ROOT, API_ROOTS
from datapolicy.web.routes.roots import ROUTE as ROUTE  # where the pipeline's steps take it
from datapolicy.web.routes.routing import (
    KEY_CONVERTOR,
    Endpoint,
    KeyRoute,
    WholePathMount,
    WholePathRoute,
    by_method,
    unquote_key,
)
from datapolicy.web.test_double import scenarios
from datapolicy.web.test_double.scenarios import ADMIN_ROOT

#: The metrics name of a request no served route matches: labels stay bounded.
OTHER = "other"
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: Graph's namespace, which qualifies its actions' names in their aliases.
NAMESPACE = "microsoft.graph"
#: A segment that holds a key in parentheses: the entity set's name, the literal's content.
_KEY_IN_PARENTHESES = re.compile(r"([^(]*)\('((?:[^']|'')+)'\)")

# The server root's paths (`server_root_routes`).
HEALTHZ = "/healthz"
READYZ = "/readyz"
METRICS = "/metrics"
CONSOLE = "/console"


@dataclass(frozen=True, eq=False)
class Route:
    """One route. `endpoints`: method -> handler (API routes); `app`: an ASGI app answering every
    method (server-root routes, static files). `aliases`: other paths of the same route.
    `any_token`: served to any valid token, with no permission (the service document, as Graph
    asks). `test_double`: served only under `serve --scenarios` (its permission holds either
    way). A route with neither endpoints nor app is declared for the pipeline only (the Graph
    profile's `/me/exportPersonalData`)."""

    path: str
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    app: ASGIApp | None = None
    aliases: tuple[str, ...] = ()
    permission: str | None = None
    public: bool = False
    any_token: bool = False
    root: bool = False
    keys: bool = False
    prefix: bool = False
    test_double: bool = False
    metrics_name: str | None = None  # default: the full template

    def __post_init__(self) -> None:
        if self.public + self.any_token + (self.permission is not None) > 1:
            raise ValueError(f"{self.path}: public, any token or one permission, not several")

    @property
    def template(self) -> str:
        """The path template from the server root (under the default API root)."""
        return self.path if self.root else API_ROOT + self.path

    @property
    def paths(self) -> tuple[str, ...]:
        """The route's path and its aliases, each with its key in parentheses too (`keys`)."""
        written = (self.path, *self.aliases)
        if not self.keys:
            return written
        return (*written, *(in_parentheses(path) for path in written))

    @cached_property
    def series_names(self) -> Mapping[str, str]:
        """The name of the route's requests in the metrics, by the API root they came in on
        (kept: read by every request): its template under that root, one name for all its
        paths, so that labels stay bounded."""
        suffix = "/{path}" if self.prefix else ""
        return {
            root: self.metrics_name or ("" if self.root else root) + self.path + suffix
            for root in API_ROOTS
        }

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
        if self.public:
            return PUBLIC
        return ANY_TOKEN if self.any_token else Requirement(permission=self.permission)

    def requirement(self, method: str) -> Requirement:
        """What `method` on this route must show."""
        if self.public or ("GET" if method == "HEAD" else method) in self.endpoints:
            return self._needed
        return ANY_TOKEN  # then 405


def in_parentheses(path: str) -> str:
    """`path` with its parameter, an entity key, in parentheses after the segment before it:
    `/dataPolicyOperations/{operation_id}/package` ->
    `/dataPolicyOperations({operation_id:odatakey})/package`."""
    head, _, tail = path.partition("/{")
    name, _, after = tail.partition("}")
    return f"{head}({{{name}:{KEY_CONVERTOR}}}){after}"


class RouteMatch(NamedTuple):
    """A request's route (None: no route) and the value of its path parameter, if it has one.
    `served`: the route answers in this app (false for test-double routes without scenarios).
    `unknown_api_path`: no route, but the path is under an API root. `api_root`: the API root
    the path is under (the default one for a path under none)."""

    route: Route | None
    key: str | None = None
    served: bool = False
    unknown_api_path: bool = False
    api_root: str = API_ROOT

    @property
    def under_api_root(self) -> bool:
        """Whether the path is under an API root (a request to the Graph API, known or not)."""
        route = self.route
        return self.unknown_api_path if route is None else not route.root

    @property
    def metrics_name(self) -> str:
        route = self.route
        if route is None or not self.served:
            return OTHER
        return route.series_names[self.api_root]

    def requirement(self, method: str) -> Requirement:
        route = self.route
        return ANY_TOKEN if route is None else route.requirement(method)


NO_ROUTE = RouteMatch(None)
UNKNOWN_API_PATHS = {
    root: RouteMatch(None, unknown_api_path=True, api_root=root) for root in API_ROOTS
}


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
# Actions are bound to an entity; Graph accepts their names qualified by its namespace too, as
# older SDKs and Microsoft's OpenAPI description write them.
USER_EXPORT = Route(
    "/users/{user_id}/exportPersonalData",
    {"POST": users.export_personal_data},
    aliases=(f"/users/{{user_id}}/{NAMESPACE}.exportPersonalData",),
    permission=EXPORT,
    keys=True,
)
USER_ERASE = Route(
    "/users/{user_id}/erasePersonalData",
    {"POST": users.erase_personal_data},
    aliases=(f"/users/{{user_id}}/{NAMESPACE}.erasePersonalData",),
    permission=ERASE,
    keys=True,
)
# Graph's export of the caller: answered by the Graph profile (web/test_double/profile.py) as
# USER_EXPORT for the token's subject; any token, as an unknown path (the profile checks the
# permission).
ME_EXPORT = Route("/me/exportPersonalData", aliases=(f"/me/{NAMESPACE}.exportPersonalData",))


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
        aliases=(f"/{ENTITY_SET}/{{operation_id}}/{NAMESPACE}.approve",),
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
    Route("/$batch", {"POST": batch.post_batch}, any_token=True),
    # The service document (the API root's own path) needs a token, as Graph's does; the
    # description of the API is public, as Graph's `$metadata` is.
    Route("/", {"GET": metadata.service_document}, aliases=("",), any_token=True),
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


#: In the tree of paths `unknown_segment` walks: a parameter (its key says whether it is an
#: entity key) and the end of a route whose app serves everything below it.
_PARAMETER = "{}"
_KEY = "{key}"
_BELOW = "/"

_Tree = dict[str, "_Tree"]


class RouteTable:
    """The routes of one app, looked up by path. Runs on every request, so a look-up is a
    dictionary get or two (by the whole path; by where the parameter is and the segments
    around it), not a match against each template."""

    def __init__(self, routes: Iterable[Route], *, test_doubles: bool = False):
        self.routes = tuple(routes)
        self.test_doubles = test_doubles
        self._exact: dict[str, RouteMatch] = {}
        self._prefixes: list[tuple[str, RouteMatch]] = []
        # (where the parameter is, the other segments) -> (route, API root); for a key in
        # parentheses, where the segment that holds it is, and the entity set's name there.
        self._by_position: dict[tuple[int, tuple[str, ...]], tuple[Route, str]] = {}
        self._in_parentheses: dict[tuple[int, tuple[str, ...]], tuple[Route, str]] = {}
        self._served_paths: _Tree = {}  # under an API root, the paths it serves
        for route in self.routes:
            served = self._served(route)
            for root in ("",) if route.root else API_ROOTS:
                for path in route.paths:
                    self._add(route, root, root + path, served)
            if served and not route.root:
                for path in route.paths:
                    self._add_to_tree(route, path)
        self._positions = sorted({position for position, _ in self._by_position})
        self._prefix_tuple = tuple(prefix for prefix, _ in self._prefixes)

    def _add(self, route: Route, root: str, template: str, served: bool) -> None:
        api_root = root or API_ROOT
        segments = template.split("/")
        parameters = [i for i, part in enumerate(segments) if "{" in part]
        if len(parameters) > 1:
            raise ValueError(f"{template}: at most one path parameter")
        if parameters:
            position = parameters[0]
            segment = segments[position]
            if segment.startswith("{"):
                rest = (*segments[:position], *segments[position + 1 :])
                self._by_position[(position, rest)] = (route, api_root)
            else:  # `entitySet({key:odatakey})`
                name = segment[: segment.index("(")]
                rest = (*segments[:position], name, *segments[position + 1 :])
                self._in_parentheses[(position, rest)] = (route, api_root)
        elif route.root or not route.prefix:
            self._exact[template] = RouteMatch(route, None, served, api_root=api_root)
        if route.prefix:
            self._prefixes.append(
                (template + "/", RouteMatch(route, None, served, False, api_root))
            )

    def _add_to_tree(self, route: Route, path: str) -> None:
        node = self._served_paths
        for segment in path.split("/")[1:]:
            if segment.startswith("{"):
                segment = _KEY if route.keys else _PARAMETER
            elif "(" in segment:  # a key in parentheses: walked as two segments
                node = node.setdefault(segment[: segment.index("(")], {})
                segment = _KEY
            node = node.setdefault(segment, {})
        if route.prefix:
            node[_BELOW] = {}

    def _served(self, route: Route) -> bool:
        if route.test_double and not self.test_doubles:
            return False
        return bool(route.endpoints) or route.app is not None

    def match(self, path: str) -> RouteMatch:
        """The route `path` addresses (`NO_ROUTE` if none)."""
        found = self._exact.get(path)
        if found is not None:
            return found
        segments = path.split("/")
        for position in self._positions:
            if position < len(segments) and (key := segments[position]):
                routed = self._by_position.get(
                    (position, (*segments[:position], *segments[position + 1 :]))
                )
                if routed is not None and not (routed[0].keys and key[0] == "$"):
                    route = routed[0]
                    return RouteMatch(route, key, self._served(route), False, routed[1])
        if "('" in path:
            for position, segment in enumerate(segments):
                written = _KEY_IN_PARENTHESES.fullmatch(segment)
                if written is None:
                    continue
                name, literal = written.groups()
                routed = self._in_parentheses.get(
                    (position, (*segments[:position], name, *segments[position + 1 :]))
                )
                key = unquote_key(literal)
                if routed is not None and key[0] != "$":
                    route = routed[0]
                    return RouteMatch(route, key, self._served(route), False, routed[1])
        if path.startswith(self._prefix_tuple):
            for prefix, match in self._prefixes:
                if path.startswith(prefix):
                    return match._replace(key=path[len(prefix) :])
        return self._unknown(path)

    def _unknown(self, path: str) -> RouteMatch:
        for root in API_ROOTS:
            if path.startswith(root + "/"):
                return UNKNOWN_API_PATHS[root]
        return NO_ROUTE

    def unknown_segment(self, path: str, api_root: str) -> str:
        """The first segment of `path` (under `api_root`) that no served route has there, as
        Graph names it in its 400: the path's last segment if it is only the start of routes'
        paths."""
        node = self._served_paths
        segments = path[len(api_root) + 1 :].split("/")
        for segment in segments:
            if _BELOW in node:
                break
            written = _KEY_IN_PARENTHESES.fullmatch(segment)
            if segment in node:
                node = node[segment]
            elif segment and _PARAMETER in node:
                node = node[_PARAMETER]
            elif segment and segment[0] != "$" and _KEY in node:
                node = node[_KEY]
            elif (
                written is not None
                and _KEY in node.get(written[1], {})
                and unquote_key(written[2])[0] != "$"
            ):
                node = node[written[1]][_KEY]
            else:
                return segment
        return segments[-1]

    async def answer_unknown_path(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app's answer to a path no route serves (Starlette's routers' `default`): under
        an API root, Graph's 400 naming the first unknown segment; elsewhere a 404."""
        match: RouteMatch = scope[ROUTE]
        if not match.under_api_root:
            raise HTTPException(404)
        segment = self.unknown_segment(scope["path"], match.api_root)
        raise HTTPError(
            400, f"Resource not found for the segment '{segment[:200]}'.", code="BadRequest"
        )

    def api_routes(self) -> list[BaseRoute]:
        """Starlette's routes of the API routes this app serves, mounted at each API root; a
        route of the API root's own path (the service document at `/v1.0`) beside each mount,
        which serves only what is below the root."""
        built: list[BaseRoute] = []
        at_roots: list[BaseRoute] = []
        for route in self.routes:
            if route.root or not self._served(route) or not (route.endpoints or route.app):
                continue
            for path in route.paths:
                if route.app is not None:
                    built.append(WholePathMount(path, app=route.app, name=route.path))
                elif path == "":
                    at_roots += [
                        by_method(root, WholePathRoute, name=route.path, **route.endpoints)
                        for root in API_ROOTS
                    ]
                else:
                    route_class = KeyRoute if route.keys else WholePathRoute
                    built.append(by_method(path, route_class, name=route.path, **route.endpoints))
        # Graph answers a trailing slash as an unknown resource; it does not redirect.
        router = Router(routes=built, redirect_slashes=False, default=self.answer_unknown_path)
        return [*at_roots, *(WholePathMount(root, app=router, name=root) for root in API_ROOTS)]
