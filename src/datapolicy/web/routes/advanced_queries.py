"""Graph's rule for advanced queries on directory objects, applied to `/users` under
`--profile graph` (docs/graph-compatibility.md, "Directory queries").

Graph answers some directory queries only when the client asks for eventual consistency
(https://learn.microsoft.com/graph/aad-advanced-queries): the `ConsistencyLevel: eventual`
header, and except for `$search` the `$count=true` option too. Without them:

- `/users/$count`: 400 `Request_BadRequest`, "$count is not currently supported.";
- `$search`: 400 `Request_UnsupportedQuery`, naming the header;
- `endsWith`, `ne`, `not`, and `$filter` with `$orderby`: 400 `Request_UnsupportedQuery`
  (these need the header and `$count=true`);
- `$count=true` without the header: ignored (no `@odata.count`), as Graph does.

Without the profile datapolicy answers all of them with or without the header: its directory
is one SQL database, always consistent, and a stricter answer would only fail clients.
"""

from __future__ import annotations

import dataclasses

from datapolicy.errors import QueryOptionError
from datapolicy.odata.expressions import (
    Comparison,
    FilterNode,
    Junction,
    Negation,
    StringMatch,
)
from datapolicy.odata.options import QueryOptions

HEADER = "ConsistencyLevel"
_HINT = (
    "is not supported because the required parameters might be missing. Try adding "
    "$count=true query parameter and ConsistencyLevel:eventual header. Refer to "
    "https://aka.ms/graph-docs/advanced-queries for more information"
)


def is_eventual(header: str | None) -> bool:
    return header is not None and header.strip().lower() == "eventual"


def check_count_segment(header: str | None) -> None:
    """`/users/$count` needs `ConsistencyLevel: eventual`."""
    if not is_eventual(header):
        raise QueryOptionError("$count is not currently supported.", code="Request_BadRequest")


def check_list(options: QueryOptions, header: str | None) -> QueryOptions:
    """The options of a `/users` list as Graph would take them, or Graph's 400: `$count=true`
    without the header is dropped."""
    eventual = is_eventual(header)
    if options.search is not None and not eventual:
        raise QueryOptionError(
            "Request with $search query parameter only works through MSGraph with a special "
            "request header: 'ConsistencyLevel: eventual'",
            code="Request_UnsupportedQuery",
        )
    if not (eventual and options.count):
        operator = _advanced_operator(options.filter) if options.filter is not None else None
        if operator is not None:
            raise QueryOptionError(
                f"Operator '{operator}' {_HINT}", code="Request_UnsupportedQuery"
            )
        if options.filter is not None and options.orderby:
            raise QueryOptionError(
                "Sorting not supported for current query.", code="Request_UnsupportedQuery"
            )
    if options.count and not eventual:
        return dataclasses.replace(options, count=False)
    return options


def _advanced_operator(node: FilterNode) -> str | None:
    """The first operator of `node` that only advanced queries support, or None."""
    match node:
        case Junction(left=left, right=right):
            return _advanced_operator(left) or _advanced_operator(right)
        case Negation():
            return "not"
        case Comparison(op="ne"):
            return "ne"
        case StringMatch(function="endswith"):
            return "endsWith"
    return None
