"""The route table (web/routes/table.py) against a reference: Starlette's own router, built from
the same entries as the app builds it (`RouteTable.api_routes`), must pick the same route under
the same API root (`/v1.0` or `/beta`) for every path, with the same path parameter, or none
where the table finds none. The pipeline
decides authentication, rate limits, metrics and the Graph profile by the table's match, and
Starlette's router decides which handler runs: were they to disagree, a request could be checked
as one route and served as another.

Paths are generated from the routes' templates, under every API root, in every form (aliases,
keys in parentheses), with generated ids (odd characters, quotes, line breaks, `$` segments,
percent-encoding decoded as an HTTP server does), with trailing slashes and extra segments, and
from loose segments (unknown paths). Plus: every route has a permission decision and a bounded
metrics name, and the segment an unknown path's 400 names is one no served route has there.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.routing import BaseRoute, Match, Mount, compile_path
from starlette.types import Receive, Scope, Send

from datapolicy.auth.permissions import ANY_TOKEN, PERMISSIONS, PUBLIC, Requirement
from datapolicy.web.routes.roots import API_ROOTS
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
ROUTERS = {test_doubles: table.api_routes() for test_doubles, table in TABLES.items()}

Found = tuple[str, str, str | None]  # (API root, the route's path, its parameter's value)


def starlette_route(routes: list[BaseRoute], path: str) -> Found | None:
    """(the API root, the path relative to it of the route Starlette's router picks for `path`
    (a route is named by its declared path, whichever of its paths matched), its path
    parameter's value) or None. Any method: a route matched for another method is still the
    route (its 405 lists the methods)."""
    scope: Scope = {"type": "http", "path": path, "root_path": "", "method": "GET"}
    found: list[Found] = []
    for mount in routes:
        if not isinstance(mount, Mount):  # a route of an API root's own path
            if mount.matches(scope)[0] is not Match.NONE:
                found.append((mount.path, mount.name, None))
            continue
        match, child = mount.matches(scope)
        if match is Match.NONE:
            continue
        inner = {**scope, **child}
        for route in mount.routes:
            match, grandchild = route.matches(inner)
            if match is Match.NONE:
                continue
            if isinstance(route, Mount):  # static files: the key is the rest of the path
                found.append((mount.path, route.name, path[len(mount.path + route.path) + 1 :]))
            else:
                key = next(iter(grandchild["path_params"].values()), None)
                found.append((mount.path, route.name, key))
    assert len(found) <= 1, f"routes overlap on {path!r}: {found}"
    return found[0] if found else None


def table_route(table: RouteTable, path: str) -> Found | None:
    """What the table says Starlette's router should pick: the served API route, or None."""
    match = table.match(path)
    route = match.route
    if route is None or route.root or not match.served:
        return None
    return match.api_root, route.path, match.key


# Pieces of real paths, so that generated paths are often nearly right.
SEGMENTS = sorted(
    {
        part
        for route in TABLES[True].routes
        for path in (route.template, *route.paths)
        for part in path.split("/")
        if part and "{" not in part
    }
    | {root.strip("/") for root in API_ROOTS}
    | {"$count", "$value", "$ref", "$metadata", "me", "V1.0", "v2.0", "BETA", "", ".", ".."}
)
ODD = st.sampled_from(
    ["$count", "$value", "$", "%", "%2F", "%24count", "%0A", "%00", "%zz", "\n", "\r", " ",
     "\x00", "é", "\u2028", "..", ".", "~", "'", "''", "%27", "(", ")", "*", ",", ";", "=",
     "@", ":", "+"]
)  # fmt: skip
IDS = st.lists(st.one_of(ODD, st.text(min_size=1, max_size=4)), max_size=4).map("".join)
# What a client may write in the parentheses of a key: OData string literals (a quote inside
# doubled, percent-encoded or not), and what is not one (a quote alone, no quotes, empty).
KEY_LITERALS = st.one_of(
    IDS.map(lambda key: "'" + key.replace("'", "''") + "'"),
    IDS.map(lambda key: f"'{key}'"),
    IDS.map(lambda key: "%27" + key.replace("'", "%27%27") + "%27"),
    IDS,
    st.sampled_from(["''", "'", "''''", "'$count'", "'a'b'"]),
)
PARAMETER = re.compile(r"\{[^}]*\}")


@st.composite
def raw_paths(draw: st.DrawFn) -> str:
    """A request target's path as a client writes it (percent-encoding and all)."""
    if draw(st.booleans()):  # from one of a route's paths, its parameter an id
        route: Route = draw(st.sampled_from(TABLES[True].routes))
        if route.root:
            parts = route.template.split("/")
        else:
            root = draw(st.sampled_from(API_ROOTS))
            parts = (root + draw(st.sampled_from(route.paths))).split("/")
        parts = [
            draw(IDS) if part.startswith("{") else PARAMETER.sub(lambda _: draw(KEY_LITERALS), part)
            for part in parts
        ]
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
# A line feed: Starlette's Mount of the API root matched none, while the table took `x\n` for a
# user id; now both do (a key may hold one), and one after a route's path is another path.
@example(raw="/v1.0/dataPolicyOperations/a%0Ab")
@example(raw="/beta/dataPolicyOperations%0A")
@example(raw="/v1.0/docs/assets/a%0A")
@example(raw="/v1.0/users/x%0A/exportPersonalData")
@example(raw="/v1.0/dataPolicyOperations%0A")
@example(raw="/v1.0/dataPolicyOperations/$count")
@example(raw="/v1.0/dataPolicyOperations/%24value")
@example(raw="/v1.0/dataPolicyOperations/a%2Fb")
@example(raw="/v1.0/dataPolicyOperations/")
@example(raw="/v1.0/users/%20")
@example(raw="/v1.0/admin/datapolicy/scenarios/snapshots/x/restore")
@example(raw="/beta/dataPolicyOperations('a''b')/package")
@example(raw="/beta/users(%27x%27)/microsoft.graph.exportPersonalData")
@example(raw="/v1.0/dataPolicyOperations('a'b')")
@example(raw="/v1.0/dataPolicyOperations('$count')")
@example(raw="/v1.0/dataPolicyOperations('')")
@example(raw="/v1.0/dataPolicyOperations('a%2Fb')")
@example(raw="/beta/")
@example(raw="/beta")
@example(raw="/v1.0%0A")
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
        assert match.under_api_root == path.startswith(tuple(root + "/" for root in API_ROOTS))


def test_every_route_has_a_permission_decision_and_a_metrics_name() -> None:
    table = TABLES[True]
    names: dict[str, Route] = {}
    for route in table.routes:
        if route.root:
            assert not route.rate_limited  # answered before authentication and rate limits
        elif route.endpoints or route.app is not None:
            assert route.public or route.any_token or route.permission in PERMISSIONS, route
            for method in route.endpoints:
                needed = route.requirement(method)
                assert needed in (PUBLIC, Requirement(permission=route.permission))
                assert route.requirement("HEAD" if method == "GET" else method) == needed
            assert route.rate_limited
        else:  # declared for the pipeline only: as an unknown path, the layer decides
            assert (route.permission, route.public) == (None, False), route.template
            assert route.requirement("POST") == ANY_TOKEN
        for root in API_ROOTS[:1] if route.root else API_ROOTS:
            name = RouteMatch(route, "an id", served=True, api_root=root).metrics_name
            assert name == OTHER or name.startswith(
                route.template if route.root else root + route.path
            ), (name, route.template)
            assert "an id" not in name
            if name != OTHER:
                assert name not in names, f"{route.template} and {names[name].template}: one name"
                names[name] = route


def fits(segment: str, part: str, keys: bool) -> bool:
    """Whether a path's segment is what a route's template has there, by Starlette's own
    pattern of that template segment (and, for a key, not a `$` segment: `KeyRoute`)."""
    regex, _, _ = compile_path("/" + part)
    found = regex.fullmatch("/" + segment)
    if found is None:
        return False
    values = [
        convertor.convert(found[name]) for name, convertor in compile_path("/" + part)[2].items()
    ]
    return not (keys and any(value.startswith("$") for value in values))


def first_unknown_segment(table: RouteTable, segments: list[str]) -> str:
    """The reference: the first segment at which the path stops fitting the start of every
    served route's paths, segment by segment (the last segment if none)."""
    templates = [
        (path.split("/")[1:], route.keys)
        for route in table.routes
        if not route.root and table._served(route)
        for path in route.paths
    ]
    for cut, segment in enumerate(segments):
        templates = [
            (parts, keys)
            for parts, keys in templates
            if cut < len(parts) and fits(segment, parts[cut], keys)
        ]
        if not templates:
            return segment
    return segments[-1]


@pytest.mark.parametrize("test_doubles", [False, True], ids=["plain", "scenarios"])
@settings(max_examples=300, deadline=None)
@given(raw=raw_paths())
@example(raw="/v1.0/nothingHere/x")
@example(raw="/beta/dataPolicyOperations('x')/nothingHere")
@example(raw="/v1.0/users/")
@example(raw="/v1.0/admin/datapolicy/scenarios")
def test_an_unknown_path_names_the_first_segment_no_served_route_has_there(
    test_doubles: bool, raw: str
) -> None:
    """Graph's 400 for a path under an API root that no route serves names its first segment
    that fits no served route's path at that place, as a reference that tries every route's
    template segment by segment finds it."""
    path = decoded(raw)
    table, routes = TABLES[test_doubles], ROUTERS[test_doubles]
    match = table.match(path)
    if not match.under_api_root or starlette_route(routes, path) is not None:
        return
    segments = path[len(match.api_root) + 1 :].split("/")
    assert table.unknown_segment(path, match.api_root) == first_unknown_segment(table, segments)
