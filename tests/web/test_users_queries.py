"""Graph's directory queries on `/users`, generated: directories of people whose names hold
quotes, non-ASCII letters, case variants and shared prefixes, and `$filter` / `$search` /
`$orderby` (any of the four properties, up to two, each either way) / `$top` queries on them.
The API's answer, every page followed by `@odata.nextLink`, must equal a reference evaluation
in Python of the semantics engine/directory.py documents (A-Z folded for displayName, mail and
userPrincipalName, id exact, code-point order, tokenized search), and `$count` /
`/users/$count` must count the same.

On SQLite and PostgreSQL (in a database whose default collation is ICU's en-US, not byte
order), each with the directory as a table and as a query.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from conftest import Service, configured_app
from databases import POSTGRESQL, SQLITE, scratch_database, store_server

pytestmark = pytest.mark.operation_store  # starts services on the test store

FIELDS = ("id", "displayName", "mail", "userPrincipalName")
FOLDED = ("displayName", "mail", "userPrincipalName")
SEPARATORS = (" ", "-", "_", ".", ",", "'", "(", "/")
# Words that collide under case folding (ASCII and not), share prefixes, and carry quotes and
# LIKE's wildcards.
WORDS = (
    "ada",
    "Ada",
    "ADA",
    "adam",
    "Adams",
    "O'Brien",
    "o'brien",
    "Élodie",
    "élodie",
    "ÉLODIE",
    "Zoë",
    "zoe",
    "straße",
    "STRASSE",
    "İz",
    "iz",
    "a_b",
    "a%b",
    "ab",
    "Ωmega",
    "ωmega",
    "x",
)
DOMAINS = ("example.com", "Example.COM", "exämple.org")

Person = dict[str, str | None]


def fold(value: str) -> str:
    return value.translate(str.maketrans(string.ascii_uppercase, string.ascii_lowercase))


words = st.sampled_from(WORDS)
names = st.lists(words, min_size=1, max_size=3).flatmap(
    lambda parts: st.lists(
        st.sampled_from((" ", "-", " ")), min_size=len(parts) - 1, max_size=len(parts) - 1
    ).map(lambda seps: "".join(p + s for p, s in zip(parts, [*seps, ""], strict=True)))
)
mails = st.builds(lambda local, domain: f"{local}@{domain}", words, st.sampled_from(DOMAINS))


@st.composite
def directories(draw: st.DrawFn) -> list[Person]:
    ids = draw(st.lists(st.sampled_from(WORDS), min_size=0, max_size=10, unique=True))
    return [
        {
            "id": user_id,
            "displayName": draw(st.none() | names),
            "mail": draw(st.none() | mails),
            "userPrincipalName": draw(st.none() | mails),
        }
        for user_id in ids
    ]


@dataclass(frozen=True)
class Query:
    """A `$filter` or `$search` text and what it means, as a predicate on a person."""

    text: str
    matches: Callable[[Person], bool]


def quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _equal(field: str, value: str) -> Callable[[Person], bool]:
    def matches(person: Person) -> bool:
        have = person[field]
        if have is None:
            return False
        return fold(have) == fold(value) if field in FOLDED else have == value

    return matches


def _starts(field: str, value: str, function: str) -> Callable[[Person], bool]:
    def matches(person: Person) -> bool:
        have = person[field]
        if have is None:
            return False
        have, value_ = (fold(have), fold(value)) if field in FOLDED else (have, value)
        return have.startswith(value_) if function == "startswith" else have.endswith(value_)

    return matches


literals = st.one_of(words, mails, names, st.sampled_from(("", "a", "A", "É", "o'", "a_", "a%")))
fields = st.sampled_from(FIELDS)


@st.composite
def leaves(draw: st.DrawFn) -> Query:
    field = draw(fields)
    kind = draw(st.sampled_from(("eq", "ne", "null", "startswith", "endswith", "in")))
    if kind == "null":
        negated = draw(st.booleans())
        return Query(
            f"{field} {'ne' if negated else 'eq'} null",
            lambda p: (p[field] is not None) == negated,
        )
    if kind == "in":
        # One value too: `in ('a')`, which odata/filter.py reads as `in ('a',)`.
        values = draw(st.lists(literals, min_size=1, max_size=3))
        tests = [_equal(field, v) for v in values]
        return Query(
            f"{field} in ({', '.join(quoted(v) for v in values)})",
            lambda p: any(t(p) for t in tests),
        )
    value = draw(literals)
    if kind in ("startswith", "endswith"):
        return Query(f"{kind}({field}, {quoted(value)})", _starts(field, value, kind))
    equal = _equal(field, value)
    if kind == "ne":
        return Query(f"{field} ne {quoted(value)}", lambda p: not equal(p))
    return Query(f"{field} eq {quoted(value)}", equal)


def combine(children: st.SearchStrategy[Query]) -> st.SearchStrategy[Query]:
    def junction(op: str, left: Query, right: Query) -> Query:
        if op == "and":
            return Query(
                f"({left.text}) and ({right.text})", lambda p: left.matches(p) and right.matches(p)
            )
        return Query(
            f"({left.text}) or ({right.text})", lambda p: left.matches(p) or right.matches(p)
        )

    return st.one_of(
        st.builds(junction, st.sampled_from(("and", "or")), children, children),
        st.builds(lambda q: Query(f"not ({q.text})", lambda p: not q.matches(p)), children),
    )


filters = st.recursive(leaves(), combine, max_leaves=4)


def _search_term(field: str, value: str) -> Callable[[Person], bool]:
    def matches(person: Person) -> bool:
        have = person[field]
        if have is None:
            return False
        have, text_ = fold(have), fold(value)
        if have.startswith(text_):
            return True
        return field == "displayName" and any(s + text_ in have for s in SEPARATORS)

    return matches


@st.composite
def searches(draw: st.DrawFn) -> Query:
    terms = []
    for _ in range(draw(st.integers(1, 2))):
        field = draw(st.sampled_from(("displayName", "mail")))
        value = draw(st.one_of(words, st.sampled_from(("a", "É", "o'", "ad", "zo"))))
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        terms.append((f'"{field}:{escaped}"', _search_term(field, value)))
    if len(terms) == 1:
        return Query(terms[0][0], terms[0][1])
    op = draw(st.sampled_from(("AND", "OR", "AND NOT")))
    (left_text, left), (right_text, right) = terms
    if op == "AND":
        return Query(f"{left_text} AND {right_text}", lambda p: left(p) and right(p))
    if op == "AND NOT":
        return Query(f"{left_text} AND NOT {right_text}", lambda p: left(p) and not right(p))
    return Query(f"{left_text} OR {right_text}", lambda p: left(p) or right(p))


def reference_order(people: list[Person], by_name: bool) -> list[str]:
    """Ids in the API's order: by folded displayName (null first) then id, or by id, in code
    points (byte order of UTF-8)."""
    return reference_sort(people, (("displayName", False),) if by_name else ())


def reference_sort(people: list[Person], order: tuple[tuple[str, bool], ...]) -> list[str]:
    """Ids in the order `order` ((property, descending) pairs) as OData and
    odata/skiptoken.py `effective_order` say: nulls before any value ascending and after it
    descending, folded properties by their folded value, then id in the direction of the last
    property (nothing after id, which is unique)."""
    keys = list(order)
    if not any(name == "id" for name, _ in keys):
        keys.append(("id", keys[-1][1] if keys else False))
    keys = keys[: [name for name, _ in keys].index("id") + 1]
    ordered = list(people)
    for name, descending in reversed(keys):  # stable sorts, the last key first

        def key(p: Person, name: str = name) -> tuple[bool, str]:
            value = p[name]
            return (
                value is not None,
                "" if value is None else fold(value) if name in FOLDED else value,
            )

        ordered.sort(key=key, reverse=descending)
    return [p["id"] for p in ordered]  # type: ignore[misc]


orders = st.lists(
    st.tuples(fields, st.booleans()), min_size=1, max_size=2, unique_by=lambda k: k[0]
)


# --- the services -----------------------------------------------------------------------------

CREATE = (
    "CREATE TABLE people (id VARCHAR(64) PRIMARY KEY, display_name VARCHAR(200), "
    "mail VARCHAR(200), upn VARCHAR(200))"
)
COLUMNS = (
    'id_column = "id"\ndisplay_name_column = "display_name"\nmail_column = "mail"\n'
    'user_principal_name_column = "upn"\n'
)


@dataclass
class Directory:
    service: Service
    engine: Engine

    def replace(self, people: list[Person]) -> None:
        with self.engine.begin() as connection:
            connection.execute(text("DELETE FROM people"))
            if people:
                connection.execute(
                    text("INSERT INTO people VALUES (:id, :displayName, :mail, :upn)"),
                    [{**p, "upn": p["userPrincipalName"]} for p in people],
                )


@pytest.fixture(
    scope="module",
    params=[(SQLITE, "table"), (SQLITE, "query"), (POSTGRESQL, "table"), (POSTGRESQL, "query")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def directory(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Directory]:
    kind, shape = request.param
    base: Path = tmp_path_factory.mktemp(f"users-{kind}-{shape}")
    within = store_server(kind)  # PostgreSQL: a database whose default collation is ICU's
    with scratch_database(kind, base, within=within) as url:
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text(CREATE))
        source = (
            'table = "people"\n'
            if shape == "table"
            else 'query = "SELECT id, display_name, mail, upn FROM people"\n'
        )
        config = f'[directory]\nurl = "{url}"\n{source}{COLUMNS}'
        running = configured_app(base, config, "--workers", "0")
        try:
            yield Directory(running, engine)
        finally:
            running.stop()
            engine.dispose()


def all_pages(directory: Directory, params: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """Every user the query gives, following `@odata.nextLink`; and the pages' bodies."""
    with directory.service.client() as http:
        response = http.get("/users", params=params)
        assert response.status_code == 200, response.text
        pages = [response.json()]
        while "@odata.nextLink" in pages[-1]:
            response = http.get(pages[-1]["@odata.nextLink"])
            assert response.status_code == 200, response.text
            pages.append(response.json())
    return [user for page in pages for user in page["value"]], pages


def count(directory: Directory, params: dict[str, str]) -> int:
    with directory.service.client() as http:
        response = http.get("/users/$count", params=params)
    assert response.status_code == 200, response.text
    return int(response.text)


GENERATED = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ADA = {
    "id": "ada",
    "displayName": "Ada O'Brien",
    "mail": "Ada@Example.COM",
    "userPrincipalName": None,
}
ELODIE = {"id": "Élodie", "displayName": "élodie-zoë", "mail": None, "userPrincipalName": "É@x"}


@GENERATED
@given(people=directories(), query=filters, by_name=st.booleans(), top=st.integers(1, 4))
@example(
    people=[ADA, ELODIE],
    query=Query("mail eq 'ADA@example.com'", _equal("mail", "ADA@example.com")),
    by_name=False,
    top=1,
)
@example(
    people=[ADA, ELODIE],
    query=Query(
        "startswith(displayName, 'ÉLODIE')", _starts("displayName", "ÉLODIE", "startswith")
    ),
    by_name=True,
    top=1,
)
def test_filtered_pages_are_the_reference_answer(
    directory: Directory, people: list[Person], query: Query, by_name: bool, top: int
):
    directory.replace(people)
    params = {"$filter": query.text, "$top": str(top), "$count": "true"}
    if by_name:
        params["$orderby"] = "displayName"
    users, pages = all_pages(directory, params)
    expected = reference_order([p for p in people if query.matches(p)], by_name)
    assert [u["id"] for u in users] == expected, params
    assert all(len(page["value"]) <= top for page in pages)
    assert {page["@odata.count"] for page in pages} == {len(expected)}
    assert count(directory, {"$filter": query.text}) == len(expected)
    by_id = {p["id"]: p for p in people}
    assert all(u == {"@odata.type": "#microsoft.graph.user", **by_id[u["id"]]} for u in users)


@GENERATED
@given(people=directories(), query=searches(), top=st.integers(1, 3))
@example(
    people=[ADA, ELODIE],
    query=Query('"displayName:brien"', _search_term("displayName", "brien")),
    top=1,
)
def test_search_pages_are_the_reference_answer(
    directory: Directory, people: list[Person], query: Query, top: int
):
    directory.replace(people)
    params = {"$search": query.text, "$top": str(top), "$select": "id,displayName"}
    users, _ = all_pages(directory, params)
    expected = reference_order([p for p in people if query.matches(p)], by_name=False)
    assert [u["id"] for u in users] == expected, params
    assert all(set(u) == {"@odata.type", "id", "displayName"} for u in users)
    assert count(directory, {"$search": query.text}) == len(expected)


@GENERATED
@given(people=directories(), order=orders, top=st.integers(1, 3))
@example(  # nulls first ascending, last descending; ties by id the last key's way
    people=[ADA, ELODIE, {**ADA, "id": "adam", "mail": None}, {**ADA, "id": "ab"}],
    order=[("mail", True)],
    top=1,
)
def test_ordered_pages_are_the_reference_order(
    directory: Directory, people: list[Person], order: list[tuple[str, bool]], top: int
):
    """`$orderby` on any of the four properties, up to two of them, each ascending or
    descending, paged by keyset `$skiptoken`: every page followed gives the reference order."""
    directory.replace(people)
    orderby = ",".join(f"{name} {'desc' if descending else 'asc'}" for name, descending in order)
    users, pages = all_pages(directory, {"$orderby": orderby, "$top": str(top)})
    assert [u["id"] for u in users] == reference_sort(people, tuple(order)), orderby
    assert all(len(page["value"]) <= top for page in pages)


@GENERATED
@given(people=directories(), key=st.one_of(words, mails))
def test_a_user_is_read_by_id_else_by_user_principal_name(
    directory: Directory, people: list[Person], key: str
):
    directory.replace(people)
    exact = [p for p in people if p["id"] == key]
    by_upn = sorted(
        (p for p in people if p["userPrincipalName"] and fold(p["userPrincipalName"]) == fold(key)),
        key=lambda p: p["id"],  # type: ignore[arg-type, return-value]
    )
    found = (exact or by_upn or [None])[0]
    with directory.service.client() as http:
        response = http.get(f"/users/{key}")
    if found is None:
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "Request_ResourceNotFound"
    else:
        assert response.status_code == 200, response.text
        assert response.json()["id"] == found["id"]
