"""A fuzz run of the whole API with hostile requests: no request may earn a 5xx or go unanswered.

Two generators against a running `datapolicy serve` (with the demo directory, so /users answers
too):
- Schemathesis, from the served OpenAPI description, every operation in its coverage and fuzzing
  phases, positive and negative, with only two checks: no 5xx, and an answer within `HANG_S`
  (tests/web/test_openapi_conformance.py checks conformance; this one pushes volume).
- A corpus of our own, sent over a raw HTTP/1.1 connection so that nothing is normalised on the
  way: any method; paths of hostile segments (`$count` in every position, NUL and other
  percent-encoded controls, `%2F`, `//`, `..`, overlong UTF-8, bidi and astral characters, huge
  numbers, 300-byte segments) under every route; query strings of OData options and junk with
  such values; hostile headers (Authorization of every wrong shape, long and odd
  client-request-id / Operation-Id / If-Match, content types, forwarding headers, 8 KiB
  values); and bodies (JSON with NUL, lone surrogates, 10^400, deep nesting, duplicate keys;
  non-UTF-8 bytes; bodies over the limit).

Every answer must come within `HANG_S`, be below 500, and, if it is an error with a JSON body,
be in Graph's error shape with a request id. Hypothesis runs derandomized with a bounded number
of examples (`DATAPOLICY_FUZZ_EXAMPLES`, default 300, about 20 s here); a longer run's figures
are in docs/security.md ("Fuzzing"). Cases that once earned a 5xx are kept as explicit examples.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis import Case, Config

from conftest import Service, start_configured, token_for
from datapolicy.auth.permissions import PERMISSIONS, READ_USERS
from datapolicy.demo import demo_user_id

EXAMPLES = int(os.environ.get("DATAPOLICY_FUZZ_EXAMPLES", "300"))
SCHEMATHESIS_EXAMPLES = int(os.environ.get("DATAPOLICY_FUZZ_SCHEMATHESIS_EXAMPLES", "10"))
HANG_S = 15.0  # an answer slower than this is a hang
BODY_TIMEOUT_S = 0.5  # the service's [limits] body_timeout_seconds: stalled uploads end soon

pytestmark = [
    pytest.mark.operation_store,  # starts services or workers on the test store
    pytest.mark.e2e,  # raw connections and Schemathesis reach the service over its port
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service of the module's own (it is flooded), with the demo directory, no workers."""
    config = f"[limits]\nbody_timeout_seconds = {BODY_TIMEOUT_S}\n"
    root = tmp_path_factory.mktemp("fuzz")
    running = start_configured(root, config, "--demo", "--workers", "0")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def operation_id(service: Service) -> str:
    """A real operation, so that by-id routes have something to find."""
    with service.client() as http:
        response = http.post("/dataPolicyOperations", json={"userId": demo_user_id(0)})
    assert response.status_code == 201, response.text
    return response.json()["id"]


# --- the corpus -----------------------------------------------------------------------------------

REAL_ID = "{operation-id}"  # replaced by the module's real operation id
HOSTILE_SEGMENTS = (
    "$count",
    "%24count",
    "$COUNT",
    "$value",
    "$ref",
    "$metadata",
    "$batch",
    "",
    "%00",
    "a%00b",
    "%2F",
    "a%2Fb",
    "%5C",
    "..",
    ".",
    "%2e%2e",
    "%C0%AF",
    "%FF",
    "%E2%80%AE",
    "%F0%9F%98%80",
    "%ED%A0%80",
    "%",
    "%zz",
    "9" * 400,
    "-1",
    "1e309",
    "x" * 300,
    "'",
    "('a')",
    ";",
    "%20",
    "+",
    "~",
    REAL_ID,
    str(uuid.UUID(int=0)),
)
ROUTE_SEGMENTS = (
    "dataPolicyOperations",
    "users",
    "package",
    "exportPersonalData",
    "me",
    "admin",
    "datapolicy",
    "scenarios",
    "openapi.json",
    "openapi.yaml",
    "docs",
    demo_user_id(0),
)
ROOTS = ("/v1.0", "/v1.0/", "//v1.0", "/V1.0", "/v2.0", "", "/console", "/docs")
METHODS = ("GET", "HEAD", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "TRACE", "FOO")
OPTION_NAMES = (
    "$filter",
    "$top",
    "$skip",
    "$count",
    "$select",
    "$orderby",
    "$search",
    "$skiptoken",
    "$expand",
    "$format",
    "$COUNT",
    "top",
    "$",
    "",
    "%00",
    "$filter%00",
)
HOSTILE_VALUES = (
    "",
    "%00",
    "a%00b",
    "%FF",
    "%",
    "%zz",
    "9" * 400,
    "-9" + "9" * 30,
    "1e309",
    "NaN",
    "true",
    "$count",
    "userId eq '%00'",
    "userId eq 'a' or " * 50 + "true",
    "(" * 200 + "true" + ")" * 200,
    "%22%00%22",
    "id,id",
    "userId desc desc",
    "%E2%80%AE",
    "x" * 5000,
)


def _text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(exclude_categories=("Cs",)), max_size=max_size)


segments = st.one_of(
    st.sampled_from(HOSTILE_SEGMENTS),
    st.sampled_from(ROUTE_SEGMENTS),
    _text(12).map(lambda text: quote(text, safe="$'(),;=+~")),
)
paths = st.builds(
    lambda root, parts, double: root + ("//" if double else "/").join(["", *parts]),
    st.sampled_from(ROOTS),
    st.lists(segments, max_size=5),
    st.booleans(),
)
query_values = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    _text(40).map(lambda text: quote(text, safe="$'(), ")),
)
queries = st.lists(st.tuples(st.sampled_from(OPTION_NAMES), query_values), max_size=4).map(
    lambda pairs: "&".join(f"{name}={value}" for name, value in pairs)
)


def _latin1(max_size: int) -> st.SearchStrategy[str]:
    """Header values an HTTP/1.1 client can send: latin-1, no CR, LF or NUL."""
    return st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
        max_size=max_size,
    )


AUTHORIZATIONS = (
    "valid",
    "read-users-only",
    None,
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "Bearer a.b.c",
    "Bearer " + "A" * 8000,
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    "bearer valid-token-then-junk",
)
HEADER_NAMES = (
    "client-request-id",
    "Operation-Id",
    "If-Match",
    "If-None-Match",
    "Content-Type",
    "Accept",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "Prefer",
    "ConsistencyLevel",
    "Accept-Encoding",
    "Range",
)
header_values = st.one_of(
    st.sampled_from(("", "*", '"x"', 'W/"1"', "application/json", "text/plain", "a" * 8000)),
    st.sampled_from(("application/json; charset=latin-1", "multipart/form-data; boundary=x")),
    _latin1(60),
)
headers = st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=4)

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from((10**400, -(10**400), 1e308, 0.1)),
        _text(20),
        st.sampled_from(("\x00", "a\x00b", "\u202e", "\U0001f600", "..\\..\\x", "/" * 3000)),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(
                st.sampled_from(("userId", "storageLocation", "@odata.type", "status", "id")),
                _text(8),
            ),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=8,
)
RAW_BODIES = (
    b"[" * 5000 + b"]" * 5000,
    b'{"userId": "a", "userId": "b"}',
    b'{"userId": "\\ud800"}',
    b'{"userId": "\\u0000"}',
    b"\xff\xfe{\x00}\x00",
    b"\xef\xbb\xbf{}",
    b'{"userId": 1e400}',
    b"{" + b" " * 70_000 + b"}",
    b"null",
)
bodies = st.one_of(
    st.none(),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.sampled_from(RAW_BODIES),
    st.binary(max_size=64),
)


HOSTS = (None, "evil.example", "127.0.0.1:99999", "[::1", "a b", "", "x" * 300, "é.example")


@dataclass(frozen=True)
class Hostile:
    method: str
    path: str
    query: str
    authorization: str | None
    headers: dict[str, str]
    body: bytes | None
    host: str | None  # None: the server's own
    missing: int  # body bytes declared in Content-Length but never sent (a stalled upload)


requests = st.builds(
    Hostile,
    method=st.sampled_from(METHODS),
    path=paths,
    query=queries,
    authorization=st.sampled_from(AUTHORIZATIONS),
    headers=headers,
    body=bodies,
    host=st.sampled_from(HOSTS),
    # Rare: each waits out the service's body timeout (BODY_TIMEOUT_S) and the drain second.
    missing=st.sampled_from((0,) * 98 + (1, 100)),
)


# --- sending, and what every answer must be ----------------------------------------------------


class RawClient:
    """One HTTP/1.1 connection at a time, reopened when the server closes it; the request line
    and headers exactly as given."""

    def __init__(self, service: Service, operation_id: str):
        address = urlsplit(service.url)
        self.host, self.port = address.hostname or "127.0.0.1", address.port or 80
        self.tokens = {
            "valid": token_for(service.data_dir, *PERMISSIONS),
            "read-users-only": token_for(service.data_dir, READ_USERS, subject="fuzz-reader"),
        }
        self.operation_id = operation_id
        self.connection: http.client.HTTPConnection | None = None
        self.sent = 0

    def send(self, request: Hostile) -> tuple[int, dict[str, str], bytes]:
        target = request.path.replace(REAL_ID, self.operation_id) or "/"
        if request.query:
            target += "?" + request.query
        target = target.replace(" ", "%20")  # the one character the corpus leaves raw
        authorization = self.tokens.get(request.authorization or "", request.authorization)
        if authorization in self.tokens.values():
            authorization = f"Bearer {authorization}"
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=HANG_S)
        connection = self.connection
        self.sent += 1
        try:
            connection.putrequest(
                request.method,
                target,
                skip_host=request.host is not None,
                skip_accept_encoding=True,
            )
            if request.host is not None:
                connection.putheader("Host", request.host.encode())
            if authorization is not None:
                connection.putheader("Authorization", authorization)
            for name, value in request.headers.items():
                connection.putheader(name, value.encode("latin-1"))
            if request.body is not None or request.missing:
                length = len(request.body or b"") + request.missing
                connection.putheader("Content-Length", str(length))
            connection.endheaders(request.body)
            response = connection.getresponse()
            body = response.read()
        except TimeoutError:
            self.close()
            pytest.fail(f"no answer within {HANG_S}s: {request}")
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            self.close()
            pytest.fail(f"the connection was dropped without an answer ({exc!r}): {request}")
        except BaseException:
            self.close()
            raise
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        if response.will_close:
            self.close()
        return response.status, answer_headers, body

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def assert_answer(request: Hostile, status: int, headers: dict[str, str], body: bytes) -> None:
    where = f"{request} -> {status}: {body[:300]!r}"
    assert status < 500, where
    if (
        status < 400
        or not body
        or not headers.get("content-type", "").startswith("application/json")
    ):
        return
    document = json.loads(body)
    assert set(document) == {"error"}, where
    error = document["error"]
    assert error["code"], where
    assert error["message"], where
    if "request-id" in headers:  # the HTTP server's own 400s (unparseable requests) carry none
        assert error["innerError"]["request-id"] == headers["request-id"], where


@pytest.fixture(scope="module")
def raw(service: Service, operation_id: str) -> Iterator[RawClient]:
    client = RawClient(service, operation_id)
    started = time.monotonic()
    yield client
    client.close()
    elapsed = time.monotonic() - started
    print(f"\nfuzz corpus: {client.sent} requests in {elapsed:.1f} s, none 5xx, none unanswered")


_CORPUS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # shrinking these strategies costs minutes
    suppress_health_check=list(HealthCheck),
)


JSON = {"Content-Type": "application/json"}


# Uploads that stall on the routes that read a body: held open without an answer before
# [limits] body_timeout_seconds existed.
@example(Hostile("POST", "/v1.0/dataPolicyOperations", "", "valid", JSON, b'{"user', None, 100))
@example(
    Hostile("PATCH", f"/v1.0/dataPolicyOperations/{REAL_ID}", "", "valid", JSON, None, None, 1)
)
@example(
    Hostile(
        "POST", f"/v1.0/users/{demo_user_id(0)}/exportPersonalData", "", "valid", JSON, b"", None, 9
    )
)
@_CORPUS
@given(request=requests)
def test_no_hostile_request_earns_a_5xx_or_a_hang(raw: RawClient, request: Hostile) -> None:
    assert_answer(request, *raw.send(request))


# --- Schemathesis over the whole description ----------------------------------------------------


@pytest.fixture(scope="module")
def api_schema(service: Service):
    config = Config.from_dict(
        {
            "seed": 20261206,
            "auth": {"openapi": {"bearer": {"bearer": service.token}}},
            "generation": {
                "deterministic": True,
                "max-examples": SCHEMATHESIS_EXAMPLES,
                "database": "none",
                "mode": "all",
            },
            "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
            "checks": {"enabled": False, "not_a_server_error": {"enabled": True}},
        }
    )
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json", config=config, timeout=30)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """As in test_openapi_conformance.py: Schemathesis 4.32 reads `request.node._nodeid`."""
    request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


SCHEMATHESIS_SENT: list[float] = []  # each request's seconds, for the run's figures


@pytest.fixture(scope="module", autouse=True)
def _schemathesis_figures() -> Iterator[None]:
    yield
    if SCHEMATHESIS_SENT:
        print(
            f"\nschemathesis: {len(SCHEMATHESIS_SENT)} requests in "
            f"{sum(SCHEMATHESIS_SENT):.1f} s, none 5xx, none unanswered"
        )


@schema.parametrize()
def test_schemathesis_finds_no_5xx_and_no_hang(case: Case) -> None:
    started = time.monotonic()
    response = case.call(timeout=HANG_S)
    SCHEMATHESIS_SENT.append(time.monotonic() - started)
    assert time.monotonic() - started < HANG_S
    case.validate_response(response)
