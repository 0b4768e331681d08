"""One route per path, dispatching on the method, so that a 405 lists every allowed method;
routes whose path parameters are entity keys, which an OData system segment (`$count`) never is;
and the `odatakey` path convertor, for a key written in parentheses as an OData string literal
(`dataPolicyOperations('id')`; OData URL conventions: a quote inside is doubled).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount, Route
from starlette.types import Scope

Endpoint = Callable[[Request], Awaitable[Response]]

#: The name of the convertor of a key in parentheses, in route templates (`{id:odatakey}`).
KEY_CONVERTOR = "odatakey"


def unquote_key(literal: str) -> str:
    """The key an OData string literal's content (between its quotes) stands for."""
    return literal.replace("''", "'")


class _KeyLiteral(Convertor[str]):
    """A non-empty OData string literal, quotes included, as the key it stands for. Within one
    segment, as a key written as a segment is (`[^/]`)."""

    regex = "'(?:[^'/]|'')+'"

    def convert(self, value: str) -> str:
        return unquote_key(value[1:-1])

    def to_string(self, value: str) -> str:
        return "'" + value.replace("'", "''") + "'"


register_url_convertor(KEY_CONVERTOR, _KeyLiteral())


def _whole_path(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """`pattern` (Starlette's, anchored with `^...$`) matching whole paths, line feeds
    included: `$` also matches before a final line feed, and a `Mount`'s `.*` stops at one, so
    Starlette would route `/v1.0/dataPolicyOperations` plus a line feed to the list, and no key
    holding one at all (a key with a line feed is a key, looked up and not found)."""
    return re.compile(pattern.pattern.removesuffix("$") + r"\Z", pattern.flags | re.DOTALL)


class WholePathRoute(Route):
    """A route that matches the whole path, line feeds included (`_whole_path`)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.path_regex = _whole_path(self.path_regex)


class WholePathMount(Mount):
    """A mount that matches the whole path, line feeds included (`_whole_path`)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.path_regex = _whole_path(self.path_regex)


class KeyRoute(WholePathRoute):
    """A route whose path parameters are keys: a segment that starts with `$` is an OData
    system resource (`$count`, `$value`, `$ref`), not a key, so it does not match here (nor
    does a key in parentheses that would start with one, as the route table decides). Without
    this, `PATCH /dataPolicyOperations/$count` reached the by-id handler, past the permission
    that `$count`'s route asks for, instead of the 405 that `$count`'s own route answers."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and any(
            isinstance(value, str) and value.startswith("$")
            for value in child.get("path_params", {}).values()
        ):
            return Match.NONE, {}
        return match, child


def by_method(
    path: str,
    route_class: type[Route] = WholePathRoute,
    *,
    name: str | None = None,
    **endpoints: Endpoint,
) -> Route:
    async def dispatch(request: Request) -> Response:
        # Starlette answers HEAD wherever GET is allowed.
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    dispatch.__name__ = "_".join(e.__name__ for e in endpoints.values())
    return route_class(path, dispatch, methods=list(endpoints), name=name)
