"""Cross-origin requests (web/middleware/cors.py): `[server] cors_origins` and its defaults, the
CORS decisions against a reference written here on generated origins, methods, header lists
and profiles (the Graph profile's `/me/exportPersonalData` included),
a real service answering preflights before authentication and adding the headers to every
response (errors and the read fast path included), and a real browser (Debian's headless
Chromium, driven by Playwright) calling the API through `fetch` from a page on another origin:
allowed, it reads `Location` and the ids; not allowed, its call fails before reaching the API.
"""

from __future__ import annotations

import functools
import http.server
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

from chromium import chromium
from conftest import Service, start_app, start_configured, token_for
from datapolicy.auth.permissions import EXPORT, READ_USERS
from datapolicy.config import ConfigError, parse_config
from datapolicy.settings import Settings
from datapolicy.web.middleware.cors import CrossOrigin
from datapolicy.web.middleware.pipeline import RequestPipeline
from datapolicy.web.routes.table import API_ROUTES, ROUTE, RouteTable, server_root_routes
from datapolicy.web.test_double.profile import ANSWERED_HERE

pytestmark = pytest.mark.operation_store  # starts services on the test store

EXPOSED = {
    "location",
    "request-id",
    "client-request-id",
    "etag",
    "retry-after",
    "operation-location",
    "preference-applied",
}


# --- configuration ---------------------------------------------------------------------------


def _origins(text: str, tmp_path: Path) -> list[str] | None:
    return parse_config(
        f"[server]\ncors_origins = {text}\n", tmp_path / "c.toml"
    ).server.cors_origins


def test_origins_are_compared_as_browsers_send_them(tmp_path: Path):
    given_origins = '["HTTPS://App.Example:443", "http://127.0.0.1:8081", "http://[::1]:80"]'
    assert _origins(given_origins, tmp_path) == [
        "https://app.example",
        "http://127.0.0.1:8081",
        "http://[::1]",
    ]
    assert _origins('["*"]', tmp_path) == ["*"]
    assert _origins("[]", tmp_path) == []


@pytest.mark.parametrize(
    "text",
    [
        '["https://app.example/"]',
        '["https://app.example/path"]',
        '["app.example"]',
        '["file://x"]',
        '["null"]',
        '["https://user@app.example"]',
        '["https://app.example:99999"]',
        '["*", "https://app.example"]',
    ],
)
def test_what_is_not_an_origin_is_refused_naming_the_key(tmp_path: Path, text: str):
    with pytest.raises(ConfigError, match=r"server\.cors_origins"):
        _origins(text, tmp_path)


def test_cors_is_off_in_production_and_on_for_the_demo_and_the_test_double(tmp_path: Path):
    assert Settings().cors_origins == []
    assert Settings(demo=True).cors_origins == ["*"]
    assert Settings(scenarios=True).cors_origins == ["*"]
    config = parse_config('[server]\ncors_origins = ["https://a.example"]\n', tmp_path / "c.toml")
    assert Settings(demo=True, config=config).cors_origins == ["https://a.example"]
    off = parse_config("[server]\ncors_origins = []\n", tmp_path / "c.toml")
    assert Settings(scenarios=True, config=off).cors_origins == []


# --- the decisions, against a reference ------------------------------------------------------

# What each path offers cross-origin, written from docs/security.md's route list (None: not
# the API, so never cross-origin; empty: no route is served there).
PATHS: dict[str, frozenset[str] | None] = {
    "/v1.0/dataPolicyOperations": frozenset({"GET", "HEAD", "POST"}),
    "/v1.0/dataPolicyOperations/op-1": frozenset({"GET", "HEAD", "PATCH", "DELETE"}),
    "/v1.0/dataPolicyOperations/$count": frozenset({"GET", "HEAD"}),
    "/v1.0/dataPolicyOperations/op-1/package": frozenset({"GET", "HEAD"}),
    "/v1.0/users/u-1/exportPersonalData": frozenset({"POST"}),
    "/v1.0/openapi.json": frozenset({"GET", "HEAD"}),
    "/v1.0/docs/assets/swagger-ui.css": frozenset({"GET", "HEAD"}),
    "/v1.0/no/such/path": frozenset(),
    # The same API under /beta, and the other spellings of its paths (docs/graph-compatibility.md).
    "/beta/dataPolicyOperations('op-1')": frozenset({"GET", "HEAD", "PATCH", "DELETE"}),
    "/beta/users/u-1/microsoft.graph.exportPersonalData": frozenset({"POST"}),
    "/v1.0/users('u-1')/erasePersonalData": frozenset({"POST"}),
    "/v1.0/": frozenset({"GET", "HEAD"}),
    "/beta": frozenset({"GET", "HEAD"}),
    "/beta/no/such/path": frozenset(),
    "/v1.0/scenarios/reset": frozenset(),  # a test double's, not served without --scenarios
    # Answered by the Graph profile's layer (web/test_double/profile.py): POST under
    # `--profile graph` (`GRAPH_PROFILE_PATHS`), an unknown path otherwise.
    "/v1.0/me/exportPersonalData": frozenset(),
    "/beta/me/microsoft.graph.exportPersonalData": frozenset(),
    "/healthz": None,
    "/console/": None,
    "/elsewhere": None,
}


async def _root_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A server-root route's app: never called, as CORS never offers the server root."""
    raise AssertionError(scope["path"])


GRAPH_PROFILE_PATHS = {
    "/v1.0/me/exportPersonalData": frozenset({"POST"}),
    "/beta/me/microsoft.graph.exportPersonalData": frozenset({"POST"}),
}
TABLE = RouteTable([*server_root_routes(_root_app, _root_app, _root_app), *API_ROUTES])
ALLOWED = ("https://app.example", "http://127.0.0.1:8081")
TCHARS = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
GRAPH_HEADERS = [
    "Authorization",
    "Content-Type",
    "ConsistencyLevel",
    "client-request-id",
    "return-client-request-id",
    "Prefer",
    "SdkVersion",
    "x-ms-client-request-id",
]


@dataclass(frozen=True)
class Request:
    allowed: tuple[str, ...]
    path: str
    method: str  # the request's own
    origin: str | None
    requested_method: str | None
    requested_headers: tuple[str, ...]  # each an Access-Control-Request-Headers line
    graph_profile: bool = False  # served with `--profile graph`

    def scope(self) -> Scope:
        headers = [] if self.origin is None else [(b"origin", self.origin.encode("latin-1"))]
        if self.requested_method is not None:
            headers.append((b"access-control-request-method", self.requested_method.encode()))
        headers += [
            (b"access-control-request-headers", line.encode("latin-1"))
            for line in self.requested_headers
        ]
        scope: Scope = {
            "type": "http",
            "method": self.method,
            "path": self.path,
            "headers": headers,
            "state": {},
        }
        scope[ROUTE] = TABLE.match(self.path)
        return scope


def reference(request: Request) -> tuple[str, int | None, dict[str, str]]:
    """What the CORS step does with `request`: ("preflight", status, headers), or ("simple",
    None, the headers added to the response)."""
    offered = PATHS[request.path]
    if request.graph_profile:
        offered = GRAPH_PROFILE_PATHS.get(request.path, offered)
    origin_ok = request.origin is not None and (
        "*" in request.allowed or request.origin in request.allowed
    )
    allow_origin = {}
    if origin_ok and offered is not None:
        if "*" in request.allowed:
            allow_origin = {"access-control-allow-origin": "*"}
        else:
            assert request.origin is not None
            allow_origin = {"access-control-allow-origin": request.origin, "vary": "Origin"}
    if request.method == "OPTIONS" and request.origin and request.requested_method is not None:
        names = [name.strip() for line in request.requested_headers for name in line.split(",")]
        names = [name for name in names if name]
        if (
            not allow_origin
            or request.requested_method not in (offered or ())
            or not all(set(name) <= TCHARS for name in names)
        ):
            return "preflight", 400, {}
        headers = {
            **allow_origin,
            "access-control-allow-methods": ", ".join(sorted(offered or ())),
            "access-control-max-age": "3600",
        }
        if names:
            headers["access-control-allow-headers"] = ",".join(name.lower() for name in names)
        return "preflight", 204, headers
    if not allow_origin:
        return "simple", None, {}
    expose = (
        "Location, request-id, client-request-id, ETag, Retry-After, Operation-Location, "
        "Preference-Applied"
    )
    return "simple", None, {**allow_origin, "access-control-expose-headers": expose}


def actual(request: Request) -> tuple[str, int | None, dict[str, str]]:
    cors = CrossOrigin(request.allowed, ANSWERED_HERE if request.graph_profile else {})
    scope = request.scope()
    preflight = cors.preflight(scope)
    if preflight is None:
        headers = cors.headers_for(scope)
        return "simple", None, {name.decode(): value.decode("latin-1") for name, value in headers}
    headers = {
        name.decode(): value.decode("latin-1")
        for name, value in preflight.raw_headers
        if name.startswith(b"access-control-") or name == b"vary"
    }
    assert cors.headers_for(scope) == []  # a preflight's headers are its own
    return "preflight", preflight.status_code, headers


header_names = st.sampled_from([*GRAPH_HEADERS, "bad name", "x-ünicode", "a:b"]) | st.text(
    alphabet="".join(sorted(TCHARS)), min_size=1, max_size=12
)
# Weighted towards preflights from allowed origins, where most of the decision is.
requests = st.builds(
    Request,
    allowed=st.sampled_from([("*",), ALLOWED[:1], ALLOWED]),
    path=st.sampled_from(list(PATHS)),
    method=st.sampled_from(["OPTIONS", "OPTIONS", "OPTIONS", "GET", "POST"]),
    origin=st.sampled_from(ALLOWED)
    | st.sampled_from([None, "https://evil.example", "null", "HTTPS://APP.EXAMPLE"]),
    requested_method=st.sampled_from(["GET", "HEAD", "POST", "PATCH", "DELETE"])
    | st.sampled_from([None, "PUT", "patch", "OPTIONS"]),
    requested_headers=st.lists(st.lists(header_names, max_size=4).map(", ".join), max_size=2).map(
        tuple
    ),
    graph_profile=st.booleans(),
)


@settings(max_examples=500)
@given(requests)
@example(  # the Graph SDK's POST, from an allowed page
    Request(
        ALLOWED,
        "/v1.0/dataPolicyOperations",
        "OPTIONS",
        ALLOWED[1],
        "POST",
        ("authorization,content-type,client-request-id,sdkversion",),
    )
)
@example(  # an origin not allowed, for a route that has the method
    Request(ALLOWED, "/v1.0/dataPolicyOperations", "OPTIONS", "https://evil.example", "GET", ())
)
@example(  # a server-root path is never offered, even to any origin
    Request(("*",), "/healthz", "OPTIONS", ALLOWED[0], "GET", ())
)
@example(  # a request header that is no header name
    Request(ALLOWED, "/v1.0/dataPolicyOperations", "OPTIONS", ALLOWED[1], "POST", ("bad name",))
)
@example(  # found: a colon is no more part of a header name than a space
    Request(("*",), "/v1.0/users/u-1/exportPersonalData", "OPTIONS", ALLOWED[0], "POST", ("a:b",))
)
@example(  # the Graph profile's export of the caller's own data, from a browser app
    Request(
        ("*",),
        "/v1.0/me/exportPersonalData",
        "OPTIONS",
        ALLOWED[0],
        "POST",
        ("authorization",),
        True,
    )
)
@example(  # PUT is not a method of the entity route
    Request(("*",), "/v1.0/dataPolicyOperations/op-1", "OPTIONS", ALLOWED[0], "PUT", ())
)
def test_cors_decisions_match_the_reference(case: Request):
    assert actual(case) == reference(case)


async def test_the_pipeline_s_own_500_carries_the_cors_headers():
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("a bug")

    pipeline = RequestPipeline(broken, TABLE, cors=CrossOrigin(["https://app.example"]))
    transport = httpx.ASGITransport(app=pipeline, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get(
            "/v1.0/dataPolicyOperations", headers={"Origin": "https://app.example"}
        )
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "generalException"
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert response.headers["vary"] == "Origin"
    assert set(response.headers["access-control-expose-headers"].lower().split(", ")) >= EXPOSED


# --- a real service --------------------------------------------------------------------------


class _Pages(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet tests


@dataclass
class Origins:
    service: Service
    allowed: str  # a page origin the service allows
    other: str  # one it does not


@pytest.fixture(scope="module")
def origins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origins]:
    """Two page servers on loopback ports (two origins) and a service allowing the first."""
    root = tmp_path_factory.mktemp("cors")
    pages = root / "pages"
    pages.mkdir()
    (pages / "index.html").write_text("<!doctype html><title>a single-page app</title>\n")
    handler = functools.partial(_Pages, directory=str(pages))
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    allowed, other = (f"http://127.0.0.1:{server.server_address[1]}" for server in servers)
    config = f'[server]\ncors_origins = ["{allowed}"]\n\n[limits]\nwrite_rate = 0.01\n'
    config += "write_burst = 3\n"
    service = start_configured(root, config, "--workers", "0")
    try:
        yield Origins(service, allowed, other)
    finally:
        service.stop()
        for server in servers:
            server.shutdown()
            server.server_close()


def _cors_headers(response: httpx.Response) -> dict[str, str]:
    return {
        name: value for name, value in response.headers.items() if name.startswith("access-control")
    }


def test_a_preflight_is_answered_before_authentication(origins: Origins):
    preflight = httpx.options(
        f"{origins.service.url}/dataPolicyOperations",
        headers={
            "Origin": origins.allowed,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, consistencylevel",
        },
    )
    assert preflight.status_code == 204, preflight.text
    assert _cors_headers(preflight) == {
        "access-control-allow-origin": origins.allowed,
        "access-control-allow-methods": "GET, HEAD, POST",
        "access-control-allow-headers": "authorization,content-type,consistencylevel",
        "access-control-max-age": "3600",
    }
    assert preflight.headers["vary"] == "Origin"
    refused = httpx.options(
        f"{origins.service.url}/dataPolicyOperations",
        headers={"Origin": origins.other, "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "BadRequest"
    assert _cors_headers(refused) == {}
    # An OPTIONS that is not a preflight is an API request like any other.
    assert httpx.options(f"{origins.service.url}/dataPolicyOperations").status_code == 401


def test_every_answer_to_an_allowed_origin_carries_the_headers(origins: Origins):
    service = origins.service
    page = {"Origin": origins.allowed}
    with httpx.Client(base_url=service.url, timeout=30) as http:
        unauthenticated = http.get("/dataPolicyOperations", headers=page)
        auth = {**page, **service.headers}
        created = http.post("/dataPolicyOperations", json={"userId": "cors-user"}, headers=auth)
        read = http.get(created.headers["location"], headers=auth)  # the read fast path
        missing = http.get("/no/such/path", headers=auth)
        weak = token_for(service.data_dir, READ_USERS)
        forbidden = http.get(
            "/dataPolicyOperations", headers={**page, "Authorization": f"Bearer {weak}"}
        )
        throttled_token = token_for(service.data_dir, EXPORT, subject=f"t-{uuid.uuid4()}")
        throttled = [
            http.post(
                "/dataPolicyOperations",
                json={"userId": "cors-throttled"},
                headers={**page, "Authorization": f"Bearer {throttled_token}"},
            )
            for _ in range(5)
        ][-1]
        other = http.get("/dataPolicyOperations", headers={"Origin": origins.other})
        no_origin = http.get("/dataPolicyOperations", headers=service.headers)
        server_root = http.get(service.url.removesuffix("/v1.0") + "/healthz", headers=page)
    answers = [unauthenticated, created, read, missing, forbidden, throttled]
    assert [a.status_code for a in answers] == [401, 201, 200, 400, 403, 429]
    assert "etag" in read.headers
    for answer in answers:
        assert answer.headers["access-control-allow-origin"] == origins.allowed
        assert answer.headers["vary"] == "Origin"
        exposed = answer.headers["access-control-expose-headers"].lower().split(", ")
        assert set(exposed) >= EXPOSED
        assert "access-control-allow-credentials" not in answer.headers
    for answer in (other, no_origin, server_root):
        assert _cors_headers(answer) == {}


# --- a browser -------------------------------------------------------------------------------

CALL = """async ([api, token]) => {
  const created = await fetch(api + "/dataPolicyOperations", {
    method: "POST",
    headers: {
      "Authorization": "Bearer " + token,
      "Content-Type": "application/json",
      "client-request-id": "from-the-browser",
      "ConsistencyLevel": "eventual",
    },
    body: JSON.stringify({userId: "cors-browser"}),
  });
  const location = created.headers.get("Location");
  const read = await fetch(location, {headers: {"Authorization": "Bearer " + token}});
  const anonymous = await fetch(api + "/dataPolicyOperations");
  return {
    status: created.status,
    location: location,
    id: (await created.json()).id,
    requestId: created.headers.get("request-id"),
    clientRequestId: created.headers.get("client-request-id"),
    readStatus: read.status,
    etag: read.headers.get("ETag"),
    anonymous: [anonymous.status, (await anonymous.json()).error.code],
  };
}"""
BLOCKED = """async ([api, token]) => {
  try {
    await fetch(api + "/dataPolicyOperations", {
      method: "POST",
      headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
      body: JSON.stringify({userId: "cors-blocked"}),
    });
    return "answered";
  } catch (error) {
    return error.name;
  }
}"""


def test_a_page_on_another_origin_calls_the_api_through_fetch(origins: Origins, tmp_path: Path):
    service = origins.service
    with chromium(tmp_path / "profile") as browser:
        page = browser.new_page()
        page.goto(f"{origins.allowed}/index.html")
        result = page.evaluate(CALL, [service.url, service.token])
        page.goto(f"{origins.other}/index.html")
        blocked = page.evaluate(BLOCKED, [service.url, service.token])
    assert result["status"] == 201
    assert result["location"].startswith(service.url)
    assert result["id"] in result["location"]
    assert result["requestId"]
    assert result["clientRequestId"] == "from-the-browser"
    assert result["readStatus"] == 200
    assert result["etag"]
    assert result["anonymous"] == [401, "InvalidAuthenticationToken"]
    assert blocked == "TypeError"
    # The preflight failed, so the POST never reached the service.
    with service.client() as http:
        listed = http.get("/dataPolicyOperations", params={"$filter": "userId eq 'cors-blocked'"})
    assert listed.json()["value"] == []


@pytest.mark.parametrize(("profile", "status"), [("graph", 204), ("datapolicy", 400)])
def test_a_preflight_for_the_callers_export_follows_the_graph_profile(
    tmp_path: Path, profile: str, status: int
):
    """`/me/exportPersonalData` is answered by the Graph profile's layer, not by a route of the
    app: its preflight offers POST under `--profile graph` (a browser app exporting its user's
    data), and is refused where the path is unknown."""
    service = start_app(tmp_path / "data", "--demo", "--profile", profile)
    try:
        with service.client(headers={}) as http:
            for path in ("/me/exportPersonalData", "/me/microsoft.graph.exportPersonalData"):
                preflight = http.options(
                    path,
                    headers={
                        "Origin": "https://spa.example",
                        "Access-Control-Request-Method": "POST",
                        "Access-Control-Request-Headers": "authorization, content-type",
                    },
                )
                assert preflight.status_code == status, preflight.text
                if status == 204:
                    assert preflight.headers["access-control-allow-methods"] == "POST"
    finally:
        service.stop()
