"""Limits on what one request may be (web/middleware/limits.py, odata/options.py): each breach is
Graph's error body with its own status and code, never a 500 and never a wait for a body that is not
going to be read.

The service runs with small `[limits]` so that the requests over them stay small too.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import Service, configured_app, start_configured

pytestmark = pytest.mark.operation_store  # starts services on the test store

MAX_BODY = 2048
MAX_PATH = 512
MAX_QUERY = 8192
MAX_PAGE = 50
BODY_TIMEOUT = 1.0
LIMITS = f"""
[limits]
body_timeout_seconds = {BODY_TIMEOUT}
max_body_bytes = {MAX_BODY}
max_path_length = {MAX_PATH}
max_query_length = {MAX_QUERY}
max_page_size = {MAX_PAGE}
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = configured_app(tmp_path_factory.mktemp("request-limits"), LIMITS, "--workers", "0")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service in a process: what a request's bytes do on a connection (a declared length
    with no body behind it, a body that stalls) needs one."""
    running = start_configured(tmp_path_factory.mktemp("served"), LIMITS, "--workers", "0")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[httpx.Client]:
    with service.client() as http:
        yield http


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    """Graph's error body with this status and code; its message."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    return error["message"]


def padded_body(size: int) -> bytes:
    """A valid POST body of exactly `size` bytes (JSON allows the trailing spaces)."""
    body = b'{"userId": "padded"}'
    return body + b" " * (size - len(body))


def test_a_body_at_the_limit_is_accepted(client: httpx.Client):
    response = client.post(
        "/dataPolicyOperations",
        content=padded_body(MAX_BODY),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


@pytest.mark.e2e
def test_a_body_declared_too_large_is_refused_before_it_is_sent(served: Service):
    """A Content-Length over the limit gets 413 at once, before any of the body arrives, and
    the connection is closed rather than read: a client cannot make the server take in a
    gigabyte, nor make it wait for one."""
    address = urlsplit(served.url)
    head = (
        "POST /v1.0/dataPolicyOperations HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {served.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10**9}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(head)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split(b" ")[1] == b"413", answer
    assert b"connection: close" in rest.lower()
    assert b'"code":"RequestEntityTooLarge"' in answer
    assert time.monotonic() - started < 5


@pytest.mark.e2e
@pytest.mark.parametrize("sent", [b"", b'{"userId": "sl'])
def test_a_body_that_stalls_is_a_408_and_the_connection_closed(served: Service, sent: bytes):
    """Headers, then none or part of the body, then nothing: a 408 once `body_timeout_seconds`
    have passed (plus the second the server gives an unread body), not a connection held open
    for as long as the client likes."""
    address = urlsplit(served.url)
    head = (
        "POST /v1.0/dataPolicyOperations HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {served.token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    ).encode()
    started = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=20) as connection:
        connection.sendall(head + sent)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    elapsed = time.monotonic() - started
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split(b" ")[1] == b"408", answer
    assert b"connection: close" in rest.lower()
    assert b'"code":"RequestTimeout"' in answer
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + 5


def test_a_body_over_the_limit_is_refused_with_413(client: httpx.Client):
    message = assert_error(
        client.post(
            "/dataPolicyOperations",
            content=padded_body(MAX_BODY + 1),
            headers={"Content-Type": "application/json"},
        ),
        413,
        "RequestEntityTooLarge",
    )
    assert str(MAX_BODY) in message


def test_a_chunked_body_is_counted_as_it_arrives(client: httpx.Client):
    """Without a Content-Length the body is counted while it streams: over the limit is a 413
    however it is cut up, and under it is read as usual."""

    def chunks(body: bytes) -> Iterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    headers = {"Content-Type": "application/json"}
    over = client.post("/dataPolicyOperations", content=chunks(b" " * 100_000), headers=headers)
    assert over.request.headers.get("transfer-encoding") == "chunked"
    assert_error(over, 413, "RequestEntityTooLarge")
    under = client.post("/dataPolicyOperations", content=chunks(padded_body(1000)), headers=headers)
    assert under.status_code == 201, under.text


def test_a_huge_body_is_refused_before_the_token_is_looked_at(service: Service):
    """Size limits come first: an anonymous upload is not worth a token check."""
    with service.client(headers={}) as anonymous:
        response = anonymous.post(
            "/dataPolicyOperations",
            content=b"x" * (MAX_BODY + 1),
            headers={"Content-Type": "application/json"},
        )
    assert_error(response, 413, "RequestEntityTooLarge")


def test_a_long_query_string_is_a_400(client: httpx.Client):
    """Graph documents no 414, so a URL too long is a 400, as any malformed request is."""
    response = client.get("/dataPolicyOperations", params={"custom": "x" * MAX_QUERY})
    assert f"query string is longer than {MAX_QUERY}" in assert_error(response, 400, "BadRequest")


def test_a_long_path_is_a_400(client: httpx.Client):
    response = client.get(f"/dataPolicyOperations/{'a' * MAX_PATH}")
    assert f"path is longer than {MAX_PATH}" in assert_error(response, 400, "BadRequest")


def test_a_long_filter_within_the_query_limit_is_a_400(client: httpx.Client):
    """The query string fits, but `$filter` is over its own limit (4096 characters)."""
    long_filter = f"userId eq '{'a' * 4100}'"
    response = client.get("/dataPolicyOperations", params={"$filter": long_filter})
    assert "4096" in assert_error(response, 400, "BadRequest")


def test_a_top_over_the_maximum_page_size_is_a_400_naming_it(client: httpx.Client):
    """`$top` above `max_page_size` is refused, not clamped: the client learns the maximum."""
    assert client.get("/dataPolicyOperations", params={"$top": str(MAX_PAGE)}).status_code == 200
    response = client.get("/dataPolicyOperations", params={"$top": str(MAX_PAGE + 1)})
    assert f"the maximum is {MAX_PAGE}" in assert_error(response, 400, "BadRequest")
    users = client.get("/users", params={"$top": str(MAX_PAGE + 1)})
    assert f"the maximum is {MAX_PAGE}" in assert_error(users, 400, "BadRequest")
