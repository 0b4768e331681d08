"""Cross-origin requests from browsers (CORS, the Fetch standard's "CORS protocol"), so that a
single-page app on another origin can call the API as Graph's JavaScript clients call Graph.

The request pipeline (web/middleware/pipeline.py) asks here twice: `preflight` for an `OPTIONS`
with `Origin` and `Access-Control-Request-Method`, answered before the limits and the token (a
browser sends no token in a preflight), and `headers_for` for every other request, whose
headers it adds to the response, whoever writes it: a handler, the read fast path, or the
pipeline's own 401, 403, 404, 429 and 500 bodies.

Only the API (paths under the API root) is offered cross-origin: the server root's probes,
`/metrics` and console are for probers, scrapers and same-origin pages. A preflight is granted
for a route of the route table and the methods it has (HEAD with GET), and it echoes the request
headers the page asks for, once each is a valid header name: the token travels in
`Authorization`, which is never a cookie, so an origin of `*` grants no ambient authority, and
credentials are never allowed (no `Access-Control-Allow-Credentials`). A request from an origin
not allowed gets no CORS header at all, and its preflight a 400 without them, so the browser
refuses the call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from datapolicy.config import ANY_ORIGIN
from datapolicy.web.errors import error_response
from datapolicy.web.routes.table import ROUTE, Route

MAX_AGE_S = 3600  # how long a browser may reuse a preflight's answer (Chromium caps it at 7200)
#: The response headers a page may read beyond the CORS-safelisted ones.
EXPOSED_HEADERS = (
    "Location",
    "request-id",
    "client-request-id",
    "ETag",
    "Retry-After",
    "Operation-Location",
    "Preference-Applied",  # the page size a list applied (`Prefer: odata.maxpagesize`)
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_EXPOSE = (b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode())
_VARY = (b"vary", b"Origin")
_ANY = (b"access-control-allow-origin", b"*")


class CrossOrigin:
    """The CORS answers for `origins`: serialized origins (`https://app.example:8443`, as
    config.py normalizes them), or `*` for any origin."""

    def __init__(self, origins: Iterable[str], layered: Mapping[Route, frozenset[str]] = {}):
        """`layered`: the methods of routes declared for the pipeline only, answered by a layer
        of this app (the Graph profile's `/me/exportPersonalData`), which a preflight offers as
        it offers a served route's."""
        allowed = frozenset(origins)
        self.any_origin = ANY_ORIGIN in allowed
        self.origins = frozenset(origin.encode() for origin in allowed - {ANY_ORIGIN})
        self.layered = dict(layered)

    def _allow_origin(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        """The headers that allow `origin`; empty when it is not allowed."""
        if self.any_origin:
            return [_ANY]
        if origin in self.origins:
            return [(b"access-control-allow-origin", origin), _VARY]
        return []

    def headers_for(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """The CORS headers of the response to the request in `scope` (not a preflight)."""
        origin = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method" and scope["method"] == "OPTIONS":
                return []  # a preflight: `preflight` answers it
        if origin is None or not scope[ROUTE].under_api_root:
            return []
        allowed = self._allow_origin(origin)
        if allowed:
            allowed.append(_EXPOSE)
        return allowed

    def preflight(self, scope: Scope) -> Response | None:
        """The answer to the request in `scope` if it is a preflight (else None): the route's
        methods and the requested headers for an allowed origin, or a 400 without CORS
        headers."""
        if scope["method"] != "OPTIONS":
            return None
        origin = method = None
        requested: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                method = value.decode("latin-1")
            elif name == b"access-control-request-headers":
                requested.append(value)
        if origin is None or method is None:
            return None
        match = scope[ROUTE]
        allowed = self._allow_origin(origin) if match.under_api_root else []
        headers = requested_headers(requested)
        route = match.route
        methods = (
            () if route is None else route.methods if match.served else self.layered.get(route, ())
        )
        if not allowed:
            refusal = f"Cross-origin requests from {origin.decode('latin-1')!r} are not allowed."
        elif method not in methods:
            refusal = f"The method {method!r} is not allowed on this path."
        elif headers is None:
            refusal = "Access-Control-Request-Headers must list header names."
        else:
            allowed += [
                (b"access-control-allow-methods", ", ".join(sorted(methods)).encode()),
                (b"access-control-max-age", str(MAX_AGE_S).encode()),
            ]
            if headers:
                allowed.append((b"access-control-allow-headers", headers.encode()))
            response = Response(status_code=204)
            response.raw_headers.extend(allowed)
            return response
        return error_response(Request(scope), 400, "BadRequest", f"CORS preflight: {refusal}")


def requested_headers(values: list[bytes]) -> str | None:
    """The header names of `Access-Control-Request-Headers` (`values`: each line of it),
    lower-cased and comma-separated as browsers send them; None if one is not a header name."""
    names = []
    for value in values:
        for part in value.decode("latin-1").split(","):
            name = part.strip()
            if not name:
                continue
            if not _TOKEN.fullmatch(name):
                return None
            names.append(name.lower())
    return ",".join(names)
