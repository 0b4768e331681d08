"""The route table (web/routes/table.py) against a reference: Starlette's own router, built from
the same entries as the app builds it (`RouteTable.api_router`), must pick the same route for
every path, with the same path parameter, or none where the table finds none. The pipeline
decides authentication, rate limits, metrics and the Graph profile by the table's match, and
Starlette's router decides which handler runs: were they to disagree, a request could be checked
as one route and served as another.

Paths are generated from the routes' templates with generated ids (odd characters, line breaks,
`$` segments, percent-encoding decoded as an HTTP server does), with trailing slashes and extra
segments, and from loose segments (unknown paths). Plus: every route has a permission decision
and a bounded metrics name.
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.routing import Match, Mount
from starlette.types import Receive, Scope, Send

from datapolicy.auth.permissions import ANY_TOKEN, PERMISSIONS, PUBLIC, Requirement
from datapolicy.web.routes.operations import API_ROOT
from datapolicy.web.routes.table import (
    API_ROUTES,
    CONSOLE,
    HEALTHZ,
    METRICS,
    OTHER,
    READYZ,
    Route,
    RouteMatch,
    RouteTable,
    server_root_routes,
)


async def _root_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands for the probes, `/metrics` and the console: only their declarations are tested."""


def _table(test_doubles: bool) -> RouteTable:
    return RouteTable(
        [*server_root_routes(_root_app, _root_app, _root_app), *API_ROUTES],
        test_doubles=test_doubles,
    )


TABLES = {test_doubles: _table(test_doubles) for test_doubles in (False, True)}
ROUTERS = {test_doubles: table.api_router() for test_doubles, table in TABLES.items()}


def starlette_route(router: Mount, path: str) -> tuple[str, str | None] | None:
    """(the path, relative to the API root, of the route Starlette's router picks for `path`,
    its path parameter's value) or None. Any method: a route matched for another method is
    still the route (its 405 lists the methods)."""
    scope: Scope = {"type": "http", "path": path, "root_path": "", "method": "GET"}
    match, child = router.matches(scope)
    if match is Match.NONE:
        return None
    scope = {**scope, **child}
    found = []
    for route in router.routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):  # static files: the key is the rest of the path
            found.append((route.path, path[len(API_ROOT + route.path) + 1 :]))
        else:
            found.append((route.path, next(iter(child["path_params"].values()), None)))
    assert len(found) <= 1, f"routes overlap on {path!r}: {found}"
    return found[0] if found else None


def table_route(table: RouteTable, path: str) -> tuple[str, str | None] | None:
    """What the table says Starlette's router should pick: the served API route, or None."""
    match = table.match(path)
    route = match.route
    if route is None or route.root or not match.served:
        return None
    return route.path, match.key


# Pieces of real paths, so that generated paths are often nearly right.
SEGMENTS = sorted(
    {
        part
        for route in TABLES[True].routes
        for part in route.template.split("/")
        if part and not part.startswith("{")
    }
    | {"$count", "$value", "$ref", "$metadata", "me", "V1.0", "v2.0", "", ".", ".."}
)
ODD = st.sampled_from(
    ["$count", "$value", "$", "%", "%2F", "%24count", "%0A", "%00", "%zz", "\n", "\r", " ",
     "\x00", "é", "\u2028", "..", ".", "~", "'", "(", ")", "*", ",", ";", "=", "@", ":", "+"]
)  # fmt: skip
IDS = st.lists(st.one_of(ODD, st.text(min_size=1, max_size=4)), max_size=4).map("".join)


@st.composite
def raw_paths(draw: st.DrawFn) -> str:
    """A request target's path as a client writes it (percent-encoding and all)."""
    if draw(st.booleans()):  # from a route's template, its parameter an id
        route: Route = draw(st.sampled_from(TABLES[True].routes))
        parts = route.template.split("/")
        parts = [draw(IDS) if part.startswith("{") else part for part in parts]
        if route.prefix and draw(st.booleans()):
            parts.append(draw(IDS))
    else:  # loose segments: mostly unknown paths
        parts = ["", *draw(st.lists(st.one_of(st.sampled_from(SEGMENTS), IDS), max_size=7))]
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["", "$count", "$value", "x", "/"])))
    return "/".join(parts) or "/"


def decoded(raw: str) -> str:
    """The ASGI scope's `path`: percent-decoded, as uvicorn decodes it (`%2F` is then a `/`)."""
    return unquote(raw)


@pytest.mark.parametrize("test_doubles", [False, True], ids=["plain", "scenarios"])
@settings(max_examples=500, deadline=None)
@given(raw=raw_paths())
# The prefix route's own path: a Mount serves only what is below it (the table said "the docs'
# assets", which are public, while Starlette's router answered 404).
@example(raw="/v1.0/docs/assets")
@example(raw="/v1.0/docs/assets/")
# A line feed: Starlette's Mount of the API root matches none (the table took `x\n` for a user id).
@example(raw="/v1.0/users/x%0A/exportPersonalData")
@example(raw="/v1.0/dataPolicyOperations%0A")
@example(raw="/v1.0/dataPolicyOperations/$count")
@example(raw="/v1.0/dataPolicyOperations/%24value")
@example(raw="/v1.0/dataPolicyOperations/a%2Fb")
@example(raw="/v1.0/dataPolicyOperations/")
@example(raw="/v1.0/users/%20")
@example(raw="/v1.0/admin/datapolicy/scenarios/snapshots/x/restore")
def test_the_table_picks_the_route_starlette_routes_to(test_doubles: bool, raw: str) -> None:
    path = decoded(raw)
    table, router = TABLES[test_doubles], ROUTERS[test_doubles]
    assert table_route(table, path) == starlette_route(router, path)


@given(raw=raw_paths())
@example(raw="/console")
@example(raw="/healthz/")
@example(raw="/v1.0/healthz")
def test_server_root_routes_are_their_paths_only(raw: str) -> None:
    """Probes and `/metrics` match their own path only; the console its path and below. None of
    them is under the API root, where Starlette's router would see them."""
    path = decoded(raw)
    match = TABLES[True].match(path)
    route = match.route
    if route is not None and route.root:
        assert (
            path in (HEALTHZ, READYZ, METRICS) or path == CONSOLE or path.startswith(CONSOLE + "/")
        )
        assert starlette_route(ROUTERS[True], path) is None
        assert not match.under_api_root
    if route is None:
        assert match.under_api_root == path.startswith(API_ROOT + "/")


def test_every_route_has_a_permission_decision_and_a_metrics_name() -> None:
    table = TABLES[True]
    names: dict[str, Route] = {}
    for route in table.routes:
        if route.root:
            assert not route.rate_limited  # answered before authentication and rate limits
        elif route.endpoints or route.app is not None:
            # `$batch` alone needs any valid token: each request it carries needs its own
            # route's permission (web/routes/batch.py).
            if route.path == "/$batch":
                assert route.requirement("POST") == ANY_TOKEN
            else:
                assert route.public or route.permission in PERMISSIONS, route.template
            for method in route.endpoints:
                needed = route.requirement(method)
                assert needed in (PUBLIC, Requirement(permission=route.permission))
                assert route.requirement("HEAD" if method == "GET" else method) == needed
            assert route.rate_limited
        else:  # declared for the pipeline only: as an unknown path, the layer decides
            assert (route.permission, route.public) == (None, False), route.template
            assert route.requirement("POST") == ANY_TOKEN
        name = RouteMatch(route, "an id", served=True).metrics_name
        assert name == OTHER or name.startswith(route.template), (name, route.template)
        assert "an id" not in name
        if name != OTHER:
            assert name not in names, f"{route.template} and {names[name].template}: one name"
            names[name] = route
