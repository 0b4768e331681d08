"""A tiny loopback HTTP server publishing a JWKS, as an identity provider does, counting the
requests it answers so that tests can see when the service fetched the key set."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from joserfc.jwk import ECKey, RSAKey


class JwksServer:
    def __init__(self) -> None:
        self.keys: list[ECKey | RSAKey] = []
        self.fetches = 0
        self.failing = False  # answer 503, as a provider in an outage
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/discovery/keys"

    def document(self) -> bytes:
        return json.dumps({"keys": [k.as_dict(private=False) for k in self.keys]}).encode()


@contextmanager
def serve_jwks(*keys: ECKey | RSAKey) -> Iterator[JwksServer]:
    """A `JwksServer` on a free loopback port, publishing `keys` (change `.keys` to rotate)."""
    jwks = JwksServer()
    jwks.keys = list(keys)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            jwks.fetches += 1
            status, body = (503, b"") if jwks.failing else (200, jwks.document())
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    jwks._server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield jwks
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
