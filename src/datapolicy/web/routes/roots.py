"""The API roots, and the URL of the one a request came in on, which its links start with.

The same API is served under each root (web/routes/table.py): Graph's `/v1.0`, and `/beta`,
where Graph's beta SDKs send their requests. Which root a request used is a property of its
route match (`RouteMatch.api_root`, in the scope under `ROUTE`), never assumed: a client that
called `/beta` gets `@odata.context`, `@odata.nextLink` and `Location` under `/beta`.
"""

from __future__ import annotations

import functools

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.types import Scope

API_ROOT = "/v1.0"
BETA_ROOT = "/beta"
#: Every API root, the default one first.
API_ROOTS = (API_ROOT, BETA_ROOT)

#: The scope key of a request's `RouteMatch` (web/routes/table.py; set by the pipeline before
#: anything reads it).
ROUTE = "datapolicy.route"


def service_root(request: Request) -> str:
    """The absolute URL of the API root the request came in on, as the client addressed it."""
    return service_root_of(request.scope)


def service_root_of(scope: Scope) -> str:
    host = next((value for name, value in scope["headers"] if name == b"host"), None)
    server = scope.get("server")
    origin = origin_of(scope.get("scheme", "http"), host, None if server is None else tuple(server))
    api_root: str = scope[ROUTE].api_root
    return origin + api_root


@functools.lru_cache(maxsize=256)
def origin_of(scheme: str, host: bytes | None, server: tuple[str, int] | None) -> str:
    """`scheme://host[:port]` as `request.url` gives it (Starlette checks the Host header and
    drops a default port), worked out once per distinct scheme, Host and server address instead
    of by building and parsing the whole request URL on every request (see
    docs/benchmarks.md)."""
    headers = [] if host is None else [(b"host", host)]
    url = URL(scope={"scheme": scheme, "server": server, "path": "/", "headers": headers})
    return f"{url.scheme}://{url.netloc}"
