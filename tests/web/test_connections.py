"""A request answered without its body being read (401, 415, 413) leaves the connection usable
for the client's next request, or says `Connection: close`: a client that reuses a connection
the server dropped silently gets no answer at all (httpx's "Server disconnected without sending
a response")."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from conftest import ProcessService
from datapolicy.web.middleware.pipeline import DRAIN_LIMIT

pytestmark = pytest.mark.e2e  # a connection's bytes: the server's, not the app's


@pytest.fixture(scope="module")
def service(service_process: ProcessService) -> ProcessService:
    """The session's service in a process: the tests speak HTTP on its port."""
    return service_process


def exchange(service, raw: bytes, responses: int) -> list[bytes]:
    """Send `raw` (one or more pipelined requests) on one connection; the status lines and
    headers of the first `responses` responses (empty if the connection closed first)."""
    address = urlsplit(service.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(raw)
        received = b""
        heads: list[bytes] = []
        while len(heads) < responses:
            if b"\r\n\r\n" not in received:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                received += chunk
                continue
            head, _, rest = received.partition(b"\r\n\r\n")
            heads.append(head)
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(rest) < length:
                rest += connection.recv(65536)
            received = rest[length:]
        return heads


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} /v1.0{path} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain"}, b"415"),  # refused before the body is read
        ({}, b"401"),  # no token: refused before the app sees the request
    ],
    ids=["415", "401"],
)
def test_a_body_the_app_did_not_read_does_not_cost_the_next_request(service, headers, status):
    """Two pipelined requests on one connection, the first refused unread: both are answered,
    and the connection is kept alive."""
    authorized = {**service.headers, **headers} if status != b"401" else headers
    first = request("POST", "/dataPolicyOperations", authorized, b"x" * 50_000)
    second = request("GET", "/dataPolicyOperations/$count", service.headers)
    heads = exchange(service, first + second, 2)
    assert len(heads) == 2, heads
    assert heads[0].split(b" ")[1] == status
    assert heads[1].split(b" ")[1] == b"200"
    assert b"connection: close" not in heads[0].lower()


def test_a_body_too_large_to_read_is_answered_with_connection_close(service):
    """A body over the drain limit is not read: the answer (413: it is over `[limits]
    max_body_bytes` too, which is checked before its media type) says the connection will
    close."""
    body = b"x" * (DRAIN_LIMIT + 1024)
    raw = request(
        "POST", "/dataPolicyOperations", {**service.headers, "Content-Type": "text/plain"}, body
    )
    heads = exchange(service, raw, 1)
    assert heads[0].split(b" ")[1] == b"413"
    assert b"connection: close" in heads[0].lower()
