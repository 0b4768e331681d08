"""One route per path, dispatching on the method, so that a 405 lists every allowed method."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]


def by_method(path: str, **endpoints: Endpoint) -> Route:
    async def dispatch(request: Request) -> Response:
        # Starlette answers HEAD wherever GET is allowed.
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    dispatch.__name__ = "_".join(e.__name__ for e in endpoints.values())
    return Route(path, dispatch, methods=list(endpoints))
