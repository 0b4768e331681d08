"""The floor: a bare ASGI app on uvicorn, run exactly as src/datapolicy/server.py runs the service
(`http_server`: the same configuration, uvloop, a socket bound beforehand).

It answers every request at once with a fixed response: a body of the same size as the real
service's response and the same response headers (names and value lengths), so that the wire
traffic matches and only the application's work differs. Paths under
`/v1.0/dataPolicyOperations/` get the entity-sized response, every other path the list-sized one.

    python bench/bare_server.py --port 8099 --spec spec.json

`spec.json`: {"entity": {"size": N, "headers": [[name, value], ...]}, "list": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
from pathlib import Path

import uvloop

from datapolicy.server import http_server

ENTITY_PREFIX = "/v1.0/dataPolicyOperations/"


def fixed_response(spec: dict) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = b'{"v":"' + b"x" * max(0, spec["size"] - 8) + b'"}'  # exactly `size` bytes
    headers = [(name.encode(), value.encode()) for name, value in spec["headers"]]
    headers.append((b"content-length", str(len(body)).encode()))
    return headers, body


def make_app(spec: dict):
    entity_headers, entity_body = fixed_response(spec["entity"])
    list_headers, list_body = fixed_response(spec["list"])
    start_entity = {"type": "http.response.start", "status": 200, "headers": entity_headers}
    body_entity = {"type": "http.response.body", "body": entity_body}
    start_list = {"type": "http.response.start", "status": 200, "headers": list_headers}
    body_list = {"type": "http.response.body", "body": list_body}

    async def app(scope, receive, send):  # no lifespan: http_server runs none
        if scope["path"].startswith(ENTITY_PREFIX):
            await send(start_entity)
            await send(body_entity)
        else:
            await send(start_list)
            await send(body_list)

    return app


async def serve(host: str, port: int, spec: dict) -> None:
    listener = socket.create_server((host, port), backlog=2048)
    server = http_server(make_app(spec))

    def stop() -> None:
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    await server.serve(sockets=[listener])


def main() -> None:
    parser = argparse.ArgumentParser(description="bare ASGI floor for the API benchmark")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spec", type=Path, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, json.loads(args.spec.read_text())))


if __name__ == "__main__":
    main()
