"""What a `datapolicy worker` answers on its `--metrics-port`: `GET /healthz`, its liveness,
and every other path its export metrics in Prometheus' text format (as before the probe was
added).

A worker serves no API, so it has no Starlette app; the port is a small WSGI app on
prometheus-client's threading server, like the metrics page alone was. Kubernetes' own
components answer `/metrics` and `/healthz` on one port in the same way, so one container probe
and one scrape configuration fit both `serve` and `worker` (the image's HEALTHCHECK asks
`/healthz` on `DATAPOLICY_PORT`; docker-compose.yml gives the workers that port).

`/healthz` is 200 `{"status": "ok"}` while every export thread runs (a thread's loop survives
every error it can catch, a store outage included, so this touches no dependency, as the API's
`/healthz` does not), and 503 in Graph's error shape naming the threads that have ended, which
only a restart brings back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import orjson
from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

HEALTHZ = "/healthz"

StartResponse = Callable[..., Any]


def worker_port_app(ended_threads: Callable[[], list[str]]) -> Callable[..., Iterable[bytes]]:
    """The port's WSGI app: `ended_threads` says which export threads have ended (none: alive)."""
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != HEALTHZ:
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        ended = ended_threads()
        if not ended:
            start_response("200 OK", _json_headers())
            return [orjson.dumps({"status": "ok"})]
        message = f"Export threads have ended: {', '.join(ended)}; restart the worker."
        body = {"error": {"code": "serviceNotAvailable", "message": message}}
        start_response("503 Service Unavailable", _json_headers())
        return [orjson.dumps(body)]

    return app


def _json_headers() -> list[tuple[str, str]]:
    """A new list each time: wsgiref adds the Content-Length to the list it is given."""
    return [("Content-Type", "application/json")]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per probe or scrape on stderr (the worker's log is its own)."""


class WorkerPort:
    """The port, bound at once (a port in use fails the worker's start before any thread runs)
    and served from a daemon thread, once the worker exists, until the process ends."""

    def __init__(self, host: str, port: int):
        self._ended_threads: Callable[[], list[str]] = list
        self._server = make_server(
            host, port, worker_port_app(self._ended), ThreadingWSGIServer, handler_class=_Quiet
        )

    def _ended(self) -> list[str]:
        return self._ended_threads()

    def serve(self, ended_threads: Callable[[], list[str]]) -> None:
        self._ended_threads = ended_threads
        threading.Thread(target=self._server.serve_forever, name="worker-port", daemon=True).start()
