"""`$search` in Graph's syntax: `"text"`, `"property:text"`, joined by AND, OR and NOT.

Graph documents the syntax (https://learn.microsoft.com/graph/search-query-parameter) but no
library parses it, and the grammar is a handful of tokens, so it is written here by hand:

    search  := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*        adjacent terms mean AND
    unary   := "NOT" unary | term
    term    := '"' [property ':'] text '"'  (backslash escapes `"` and `\\`) | bare-word

A term matches when the text occurs, ignoring case, in any of the searchable properties, or in the
one it names. The searchable properties are passed in by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from datapolicy.errors import QueryOptionError
from datapolicy.model import ENTITY_TYPE, PROPERTIES, Property
from datapolicy.odata.expressions import FilterNode, Junction, Negation, TextSearch

MAX_SEARCH_LENGTH = 1024
MAX_SEARCH_TERMS = 32

_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))')


def parse_search(
    text: str,
    searchable: tuple[Property, ...],
    properties: Mapping[str, Property] = PROPERTIES,
    entity_type: str = ENTITY_TYPE,
) -> FilterNode:
    """The condition tree of `$search` on an entity of `entity_type` with `properties`, of
    which `searchable` may be searched."""
    if len(text) > MAX_SEARCH_LENGTH:
        raise QueryOptionError(f"$search is longer than {MAX_SEARCH_LENGTH} characters.")
    tokens = _tokenize(text)
    if not tokens:
        raise QueryOptionError('$search is empty; use $search="text".')
    if sum(1 for kind, _ in tokens if kind == "term") > MAX_SEARCH_TERMS:
        raise QueryOptionError(f"$search has more than {MAX_SEARCH_TERMS} terms.")
    parser = _Parser(tokens, searchable, properties, entity_type)
    node = parser.parse_or()
    if parser.position != len(tokens):
        raise QueryOptionError(
            f"Syntax error in $search near {parser.tokens[parser.position][1]!r}."
        )
    return node


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise QueryOptionError(
                f"Syntax error in $search at position {position}: unbalanced quotes."
            )
        quoted, bare = match.groups()
        if quoted is not None:
            tokens.append(("term", re.sub(r"\\(.)", r"\1", quoted)))
        elif bare in ("AND", "OR", "NOT"):
            tokens.append((bare, bare))
        else:
            tokens.append(("term", bare))
        position = match.end()
    return tokens


class _Parser:
    def __init__(
        self,
        tokens: list[tuple[str, str]],
        searchable: tuple[Property, ...],
        properties: Mapping[str, Property],
        entity_type: str,
    ):
        self.tokens = tokens
        self.position = 0
        self.searchable = {p.name: p for p in searchable}
        self.properties = properties
        self.entity_type = entity_type

    def _peek(self) -> str | None:
        return self.tokens[self.position][0] if self.position < len(self.tokens) else None

    def parse_or(self) -> FilterNode:
        node = self.parse_and()
        while self._peek() == "OR":
            self.position += 1
            node = Junction("or", node, self.parse_and())
        return node

    def parse_and(self) -> FilterNode:
        node = self.parse_unary()
        while self._peek() in ("AND", "NOT", "term"):
            if self._peek() == "AND":
                self.position += 1
            node = Junction("and", node, self.parse_unary())
        return node

    def parse_unary(self) -> FilterNode:
        kind = self._peek()
        if kind == "NOT":
            self.position += 1
            return Negation(self.parse_unary())
        if kind != "term":
            found = "the end" if kind is None else repr(kind)
            raise QueryOptionError(
                f"Syntax error in $search: expected a search term, found {found}."
            )
        value = self.tokens[self.position][1]
        self.position += 1
        return self._term(value)

    def _term(self, value: str) -> TextSearch:
        name, sep, rest = value.partition(":")
        props: tuple[Property, ...]
        if sep and name in self.searchable:
            props, value = (self.searchable[name],), rest
        elif sep and name in self.properties:
            allowed = ", ".join(self.searchable)
            raise QueryOptionError(
                f"The property '{name}' of type '{self.entity_type}' cannot be searched; "
                f"searchable properties: {allowed}."
            )
        else:
            props = tuple(self.searchable.values())
        if not value:
            raise QueryOptionError("A $search term is empty.")
        return TextSearch(props, value)
