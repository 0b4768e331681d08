"""`POST /$batch`: Microsoft Graph's JSON batching (learn.microsoft.com/graph/json-batching).

A batch is `{"requests": [...]}`, at most `MAX_REQUESTS` of them, each with an `id` (unique in
the batch, compared without regard to case), a `method`, a `url` relative to the API root (with
or without its leading `/`), and optionally `headers`, `body` and `dependsOn` (the ids of the
requests it must follow). Other properties are ignored, as Graph ignores them (so is the Python
SDK's `depends_on`: its requests then run in the order it lists them, which is the order it
requires their dependencies to be added in).

What is refused whole, with 400 `BadRequest` and no request run: a body that is not such an
object; more than `MAX_REQUESTS` requests (in Graph's documented words); an id missing, empty
or repeated; a method other than GET, HEAD, POST, PUT, PATCH and DELETE; a URL that is not
relative; headers that are not names and text values HTTP allows; a `body` without a
`Content-Type` header, and a write (POST, PUT, PATCH) without a body or without a
`Content-Type` (in Graph's words: "Write request id : 1 does not contain Content-Type header or
body."); a body for a media type other than JSON that is not base64 text; a `dependsOn` naming
an id not in the batch, or a cycle of them.

Each request then goes through the whole app in process, as if sent alone
(web/routes/subrequests.py): its own route's permission checked with the batch's token, its
client's rate budget spent, its limits, metrics and audit entry as for any request. The
batch's route itself needs any valid token, and is rate limited as one write.

Its answer is `{"responses": [...]}`, each with the request's `id`, `status`, `headers` and,
when it has one, `body`:
- responses are listed in the order of the requests in the batch (Graph allows any order);
- requests run one at a time, in the order of the batch, a request waiting until every request
  it depends on has run (with no `dependsOn`, simply in order: no two requests of one batch run
  at once). Graph's advice that a batch be "fully sequential or fully parallel" is not a rule
  here: any `dependsOn` graph without a cycle runs;
- a request that depends on one that failed (status 400 or above) is not run: it fails with 424
  `FailedDependency`, as Graph documents, and so, in turn, do the requests that depend on it;
- a JSON body (`application/json`, or a `+json` type) is the JSON itself; any other body (the
  text of `$count`, a package's ZIP) is its bytes in base64 (RFC 4648, with padding), as Graph
  answers binary bodies and as the Graph SDKs decode a string body (the Python SDK base64-
  decodes every string body it is given, text included);
- the responses' bodies share a budget of `RESPONSE_BYTES`: a response past it (a large
  package) is answered in the batch with 400 `BadRequest` saying to send it alone.

A `$batch` inside a batch is refused in its place, with 400. A request whose answer breaks off
after it started, or that ends without one (its connection dropped), is Graph's 500 in its
place.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response

from datapolicy.errors import InvalidRequest
from datapolicy.web.errors import error_response
from datapolicy.web.responses import json_response
from datapolicy.web.routes.payloads import read_json_object
from datapolicy.web.routes.roots import API_ROOT, ROUTE
from datapolicy.web.routes.subrequests import IN_BATCH, Captured, Target, call, scope_for

logger = logging.getLogger(__name__)

MAX_REQUESTS = 20
TOO_MANY = "JSON batch requests are currently limited to 20 individual requests."
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
WRITES = frozenset({"POST", "PUT", "PATCH"})
MAX_ID_LENGTH = 256
RESPONSE_BYTES = 8 * 1024 * 1024  # the bodies of one batch's responses, together
FAILED = 400  # a status from which a request counts as failed for its dependents

_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|//")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# Left as they are when a URL is percent-encoded: RFC 3986's reserved characters, and `%`
# (escapes already made stay as they are, as an HTTP client leaves them).
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
# Header names as Graph writes them in a batch's responses; the others in title case.
_HEADER_NAMES = {
    b"etag": "ETag",
    b"odata-version": "OData-Version",
    b"request-id": "request-id",
    b"client-request-id": "client-request-id",
    b"www-authenticate": "WWW-Authenticate",
}
_NOT_RETURNED = frozenset({b"content-length", b"connection", b"transfer-encoding"})


Invalid = Callable[[str], InvalidRequest]  # a problem -> the 400 naming the request


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch: its id as sent, what it is sent as, and the positions in the
    batch of the requests it depends on."""

    id: str
    target: Target
    depends_on: tuple[int, ...]


async def post_batch(request: Request) -> Response:
    """Graph's `POST /$batch`: each request run through the app, 200 with their responses."""
    if request.scope.get(IN_BATCH):
        raise InvalidRequest("A batch's request cannot be another $batch request.")
    # The API root the batch was sent to: its requests' URLs are relative to it.
    root = request.scope[ROUTE].api_root
    requests = parse_batch(await read_json_object(request), root)
    app = request.scope["app"]
    captured: dict[int, Captured] = {}
    budget = RESPONSE_BYTES
    for index in execution_order(requests):
        item = requests[index]
        failed = next((d for d in item.depends_on if captured[d].status >= FAILED), None)
        if failed is not None:
            message = f"The request depends on request '{requests[failed].id}', which failed."
            captured[index] = await _error(request, 424, "FailedDependency", message)
            continue
        try:
            scope = scope_for(request.scope, item.target)
            result = await call(app, scope, item.target.body, budget, request.receive)
        except Exception:  # after its response started (else the pipeline answered a 500)
            logger.exception("batch request %r broke off its response", item.id)
            result = Captured()
        if not result.status:  # broken off, or ended without an answer (a dropped connection)
            message = "An internal server error occurred; it has been logged."
            result = await _error(request, 500, "generalException", message)
        elif result.overflowed:
            message = (
                f"The response to request '{item.id}' is larger than a batch can hold "
                f"({RESPONSE_BYTES} bytes for all its responses): send it alone."
            )
            result = await _error(request, 400, "BadRequest", message)
        else:
            budget -= len(result.body)
        captured[index] = result
    responses = [response_item(item.id, captured[i]) for i, item in enumerate(requests)]
    return json_response({"responses": responses})


async def _error(request: Request, status: int, code: str, message: str) -> Captured:
    """Graph's error body for a request of the batch that the batch answers itself (small: not
    counted in the budget), with the batch's request ids."""
    response = error_response(request, status, code, message)
    return await call(response, request.scope, None, len(response.body), request.receive)


def response_item(request_id: str, captured: Captured) -> dict[str, Any]:
    """One entry of the batch's `responses`: the body inline when it is JSON, else base64."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in captured.headers:
        if raw_name in _NOT_RETURNED:
            continue
        name = _HEADER_NAMES.get(raw_name) or raw_name.decode("latin-1").title()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    item: dict[str, Any] = {"id": request_id, "status": captured.status, "headers": headers}
    body = bytes(captured.body)
    if body:
        item["body"] = _json(body) if _is_json(headers.get("Content-Type", "")) else None
        if item["body"] is None:
            item["body"] = base64.b64encode(body).decode("ascii")
    return item


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _json(body: bytes) -> Any:
    """`body` parsed, or None if it is not JSON after all (then sent in base64)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


# --- the batch's body ---------------------------------------------------------------------------


def parse_batch(document: Mapping[str, Any], root: str = API_ROOT) -> list[BatchRequest]:
    """The requests of a batch's body, checked (InvalidRequest naming the first problem); their
    URLs are relative to `root`, the API root the batch was sent to."""
    items = document.get("requests")
    if not isinstance(items, list):
        raise InvalidRequest("The batch must have a 'requests' array.")
    if len(items) > MAX_REQUESTS:
        raise InvalidRequest(TOO_MANY)
    positions: dict[str, int] = {}
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidRequest(f"Request {position + 1} of the batch is not a JSON object.")
        request_id = item.get("id")
        if not isinstance(request_id, str) or not request_id.strip():
            raise InvalidRequest(f"Request {position + 1} of the batch has no 'id' string.")
        if len(request_id) > MAX_ID_LENGTH:
            raise InvalidRequest(f"Request {position + 1}: an id is at most 256 characters.")
        if request_id.casefold() in positions:
            raise InvalidRequest(f"Request id : {request_id} is used more than once.")
        positions[request_id.casefold()] = position
    return [_request(item, positions, root) for item in items]


def _request(item: dict[str, Any], positions: Mapping[str, int], root: str) -> BatchRequest:
    request_id: str = item["id"]

    def invalid(problem: str) -> InvalidRequest:
        return InvalidRequest(f"Request id : {request_id} {problem}")

    method = item.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise invalid("has no method, or one other than " + ", ".join(sorted(METHODS)) + ".")
    method = method.upper()
    headers = _headers(item.get("headers"), invalid)
    body = item.get("body")
    content_type = next((value for name, value in headers if name == b"content-type"), None)
    if method in WRITES and (body is None or content_type is None):
        raise InvalidRequest(
            f"Write request id : {request_id} does not contain Content-Type header or body."
        )
    if body is not None and content_type is None:
        raise invalid("has a body but no Content-Type header.")
    depends_on = item.get("dependsOn")
    if depends_on is None:
        depends_on = []
    if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
        raise invalid("has a 'dependsOn' that is not an array of request ids.")
    dependencies = []
    for dependency in depends_on:
        if dependency.casefold() not in positions:
            raise invalid(f"depends on '{dependency}', which is not a request of the batch.")
        dependencies.append(positions[dependency.casefold()])
    body_bytes = _body(body, content_type, invalid)
    target = _target(method, root, item.get("url"), tuple(headers), body_bytes, invalid)
    return BatchRequest(request_id, target, tuple(dict.fromkeys(dependencies)))


def _headers(headers: object, invalid: Invalid) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    if not isinstance(headers, dict):
        raise invalid("has 'headers' that are not a JSON object.")
    raw = []
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise invalid(f"has a header name HTTP does not allow: {name[:60]!r}.")
        if not isinstance(value, str) or not _FIELD_VALUE.fullmatch(value):
            raise invalid(f"has a value for header {name} that is not text HTTP allows.")
        raw.append((name.lower().encode("ascii"), value.strip(" \t").encode("latin-1")))
    return raw


def _body(body: object, content_type: bytes | None, invalid: Invalid) -> bytes | None:
    """The bytes a request's `body` stands for: a JSON value for a JSON media type, or a
    base64 string (either alphabet, RFC 4648) for any media type."""
    if body is None:
        return None
    if isinstance(body, str):
        text = body.replace("-", "+").replace("_", "/")
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except binascii.Error:
            raise invalid("has a body string that is not base64.") from None
    if not _is_json((content_type or b"").decode("latin-1")):
        raise invalid("has a body that is not base64, for a media type other than JSON.")
    return orjson.dumps(body)


def _target(
    method: str,
    root: str,
    url: object,
    headers: tuple[tuple[bytes, bytes], ...],
    body: bytes | None,
    invalid: Invalid,
) -> Target:
    """A request's URL, relative to the API root `root`, percent-encoded as a client would send
    it."""
    if not isinstance(url, str):
        raise invalid("has no 'url' string.")
    if _ABSOLUTE.match(url):
        raise invalid(f"has a url that is not relative to the API root: {url[:100]!r}.")
    url = url.split("#", 1)[0]
    path, _, query = url.partition("?")
    if not path.startswith("/"):
        path = "/" + path
    raw_path = quote(root + path, safe=_URL_SAFE)
    return Target(
        method=method,
        path=unquote(raw_path),
        raw_path=raw_path.encode("ascii"),
        query_string=quote(query, safe=_URL_SAFE).encode("ascii"),
        headers=headers,
        body=body,
    )


def execution_order(requests: list[BatchRequest]) -> list[int]:
    """The positions of `requests` in the order they run: the batch's order, each request
    after the requests it depends on (InvalidRequest for a cycle)."""
    waiting_on = [len(request.depends_on) for request in requests]
    dependents: list[list[int]] = [[] for _ in requests]
    for position, request in enumerate(requests):
        for dependency in request.depends_on:
            dependents[dependency].append(position)
    ready = [position for position, count in enumerate(waiting_on) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        position = heapq.heappop(ready)
        order.append(position)
        for dependent in dependents[position]:
            waiting_on[dependent] -= 1
            if waiting_on[dependent] == 0:
                heapq.heappush(ready, dependent)
    if len(order) < len(requests):
        cycle = ", ".join(requests[p].id for p, count in enumerate(waiting_on) if count)
        raise InvalidRequest(f"The batch's dependsOn form a cycle (requests {cycle}).")
    return order
