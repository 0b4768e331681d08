"""The user directory: which people exist, and their Graph-shaped names.

Read from a configured SQL table or query. The web layer answers `/users` from it (Graph's
directory queries: `$filter`, `$search`, `$orderby`, `$count`, keyset pages), and the engine
puts the user's entry in the package manifest.

Every query is one SQL statement on the directory's database, never a scan in Python. Its
meaning is the same on SQLite, PostgreSQL and MariaDB (docs/configuration.md, "The user
directory"):

- `id` is compared exactly; `displayName`, `mail` and `userPrincipalName` without regard to
  the case of A-Z (Graph's directory matching ignores case): both sides are folded, the column
  by SQL's `lower()` in a byte-order collation, the literal in Python (`ascii_lower`), so
  that other letters compare exactly whatever the database's default collation;
- strings compare and sort in code-point order (PostgreSQL `COLLATE "C"`, MariaDB
  `utf8mb4_bin`, SQLite's BINARY), so a page boundary means the same on every database;
- `$search` is Graph's tokenized search: `"displayName:text"` matches a name with a word
  that starts with `text` (words are split at spaces and the punctuation of `WORD_SEPARATORS`),
  `"mail:text"` a mail that starts with `text`; both ignore case as `$filter` does.

So that a filter can use an index, the folded columns are indexed as expressions (the
directory's owner creates them; a read-only service never alters the organisation's database).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    case,
    cast,
    create_engine,
    event,
    func,
    or_,
    select,
    text,
)
from sqlalchemy import column as sql_column
from sqlalchemy.exc import DBAPIError, NoSuchTableError, SQLAlchemyError

from datapolicy.config import DirectoryConfig
from datapolicy.engine.sources.base import SourceError
from datapolicy.engine.sources.sqltypes import exactly_equal
from datapolicy.errors import QueryOptionError
from datapolicy.odata.entity import USER_PROPERTIES, USERS
from datapolicy.odata.expressions import (
    Comparison,
    FilterNode,
    Junction,
    Membership,
    Negation,
    StringMatch,
    TextSearch,
)
from datapolicy.odata.options import QueryOptions
from datapolicy.odata.skiptoken import OrderKey, SkipToken, effective_order
from datapolicy.odata.sql import (
    Parameter,
    after_clause,
    ascii_lower,
    order_clauses,
    parameterize,
    where_clause,
)

#: What separates the words of a displayName for `$search` (besides the start of the name).
WORD_SEPARATORS = (" ", "-", "_", ".", ",", "'", "(", "/")
#: The properties compared without regard to the case of A-Z.
FOLDED = frozenset({"displayName", "mail", "userPrincipalName"})
#: Each dialect's byte-order collation (SQLite's default, BINARY, already is).
_BINARY_COLLATIONS = {"postgresql": "C", "mysql": "utf8mb4_bin", "mariadb": "utf8mb4_bin"}


@dataclass(frozen=True, slots=True)
class User:
    id: str
    display_name: str | None = None
    mail: str | None = None
    user_principal_name: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "mail": self.mail,
            "userPrincipalName": self.user_principal_name,
        }


@dataclass(frozen=True, slots=True)
class UserPage:
    """One page of a directory query: its users, where the next page starts (None on the
    last), and how many users match in all (when `$count=true` asked)."""

    users: list[User]
    next: SkipToken | None
    count: int | None


class UserDirectory:
    """Users from a SQL table (or query), filtered, searched, ordered and paged in SQL."""

    def __init__(self, config: DirectoryConfig):
        self.config = config
        # Autocommit: each query is one round trip, with no BEGIN before it and no ROLLBACK
        # when its connection goes back to the pool (the directory is only read).
        self.engine = create_engine(config.url, isolation_level="AUTOCOMMIT")
        if self.engine.dialect.name == "sqlite":
            # startswith(id, ...) is case-sensitive as OData says; SQLite's LIKE is not, unless
            # told so (the folded properties are folded on both sides anyway).
            event.listen(self.engine, "connect", _case_sensitive_like)
        self._source: Any = None
        self._columns: dict[str, Any] | None = None

    def _users(self) -> Any:
        """A selectable with columns id, displayName, mail, userPrincipalName."""
        if self._source is None:
            config = self.config
            try:
                if config.table is not None:
                    base: Any = Table(config.table, MetaData(), autoload_with=self.engine)
                else:
                    named = [
                        config.id_column,
                        config.display_name_column,
                        config.mail_column,
                        config.user_principal_name_column,
                    ]
                    base = (
                        text(config.query or "")
                        .columns(*(sql_column(n) for n in named if n is not None))
                        .subquery("directory")
                    )
            except NoSuchTableError:
                raise SourceError(f"user directory: there is no table '{config.table}'") from None
            except SQLAlchemyError as exc:
                raise _error(self, exc) from None

            def column(name: str | None, label: str) -> Any:
                if name is None:
                    return cast(None, String).label(label)
                return base.c[name].label(label)

            key = base.c[config.id_column]
            # A string key is used as it is, so that an index on it serves `id` lookups.
            key = key if isinstance(key.type, String) else cast(key, String)
            self._source = (
                select(
                    key.label("id"),
                    column(config.display_name_column, "displayName"),
                    column(config.mail_column, "mail"),
                    column(config.user_principal_name_column, "userPrincipalName"),
                )
                .select_from(base)
                .subquery("users")
            )
        return self._source

    def _query_columns(self) -> dict[str, Any]:
        """OData name -> what queries compare and sort: the column in byte order, folded
        (`lower()`) for the properties of `FOLDED`."""
        if self._columns is None:
            users = self._users()
            collation = _BINARY_COLLATIONS.get(self.engine.dialect.name)
            columns: dict[str, Any] = {}
            for name in USER_PROPERTIES:
                column = users.c[name]
                if collation is not None:
                    column = column.collate(collation)
                columns[name] = func.lower(column, type_=String) if name in FOLDED else column
            self._columns = columns
        return self._columns

    def check(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(select(self._users()).limit(1)).all()

    def get(self, user_id: str) -> User | None:
        """The user whose id is `user_id` exactly."""
        if "\x00" in user_id:  # no id has one (and PostgreSQL's text cannot hold it: a 500)
            return None
        users = self._users()
        rows = self._run(
            select(users).where(
                exactly_equal(users.c.id, bindparam("user_id", type_=String), self.engine.dialect)
            ),
            {"user_id": user_id},
        )
        return _user(rows[0]) if rows else None

    def find(self, key: str) -> User | None:
        """The user whose id is `key`, else the one whose userPrincipalName is `key` (ignoring
        the case of A-Z), as Graph's `/users/{id | userPrincipalName}` reads one; should two
        users share a userPrincipalName (Graph's never do), the first by id. One statement
        (each condition has its index), so that either lookup is one round trip."""
        if "\x00" in key:
            return None
        users, columns = self._users(), self._query_columns()
        by_id = exactly_equal(users.c.id, bindparam("key", type_=String), self.engine.dialect)
        statement = (
            select(users)
            .where(or_(by_id, columns["userPrincipalName"] == bindparam("upn", type_=String)))
            .order_by(case((by_id, 0), else_=1), columns["id"])
            .limit(1)
        )
        rows = self._run(statement, {"key": key, "upn": ascii_lower(key)})
        return _user(rows[0]) if rows else None

    def query(self, options: QueryOptions, size: int) -> UserPage:
        """A page of at most `size` users matching `options` (`$filter`, `$search`,
        `$orderby`, `$skiptoken`, `$count`), in the order asked, then by id."""
        params: dict[str, Any] = {}
        columns = self._query_columns()
        keys = effective_order(options.orderby, USERS.default_order)
        statement: Select[Any] = (
            select(self._users())
            .where(*self._conditions(options, params))
            .order_by(*order_clauses(keys, columns, USER_PROPERTIES))
            .limit(size + 1)
        )
        if options.skiptoken is not None:
            after: list[Parameter | None] = []
            for index, value in enumerate(options.skiptoken.values):
                if value is None:
                    after.append(None)
                else:
                    params[f"a{index}"] = value
                    after.append(Parameter(f"a{index}"))
            statement = statement.where(after_clause(keys, tuple(after), columns, USER_PROPERTIES))
        users = [_user(row) for row in self._run(statement, params)]
        token = None
        if len(users) > size:
            values = _key_values(users[size - 1], keys)
            token = SkipToken.for_values(values, keys, options.maxpagesize)
        total = self.count(options) if options.count else None
        return UserPage(users[:size], token, total)

    def count(self, options: QueryOptions) -> int:
        """How many users match the `$filter` and `$search` of `options`."""
        params: dict[str, Any] = {}
        statement = (
            select(func.count().label("count"))
            .select_from(self._users())
            .where(*self._conditions(options, params))
        )
        total: int = self._run(statement, params)[0]["count"]
        return total

    def _conditions(self, options: QueryOptions, params: dict[str, Any]) -> list[Any]:
        columns = self._query_columns()
        return [
            where_clause(
                parameterize(directory_condition(node), _same, prefix, params).tree, columns
            )
            for prefix, node in (("f", options.filter), ("s", options.search))
            if node is not None
        ]

    def _run(self, statement: Any, parameters: dict[str, Any]) -> list[Any]:
        """The rows of one statement. A pooled connection the server has closed is found by
        the statement that fails on it (no ping before each: a round trip, a third of a mail
        lookup's time); SQLAlchemy then empties the pool, and the statement runs once more on a
        new connection."""
        try:
            try:
                return self._execute(statement, parameters)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
            return self._execute(statement, parameters)
        except SQLAlchemyError as exc:
            raise _error(self, exc) from None

    def _execute(self, statement: Any, parameters: dict[str, Any]) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(statement, parameters).mappings())

    def close(self) -> None:
        self.engine.dispose()


def directory_condition(node: FilterNode) -> FilterNode:
    """A `$filter` or `$search` tree on users, as the directory's SQL compares it: literals of
    the folded properties folded, and each search term as the `$filter` it means (Graph's
    tokenized search). A term that names no property is refused: Graph's directory search
    needs `"property:text"`."""
    match node:
        case Junction(op=op, left=left, right=right):
            return Junction(op, directory_condition(left), directory_condition(right))
        case Negation(operand=operand):
            return Negation(directory_condition(operand))
        case Comparison(prop=prop, op=op, value=str() as value) if prop.name in FOLDED:
            return Comparison(prop, op, ascii_lower(value))
        case Membership(prop=prop, values=values) if prop.name in FOLDED:
            return Membership(
                prop, tuple(ascii_lower(v) if isinstance(v, str) else v for v in values)
            )
        case StringMatch(function=function, prop=prop, value=value) if prop.name in FOLDED:
            return StringMatch(function, prop, ascii_lower(value))
        case TextSearch(props=(prop,), text=text):
            folded = ascii_lower(text)
            starts: FilterNode = StringMatch("startswith", prop, folded)
            if prop.name != "displayName":
                return starts
            for separator in WORD_SEPARATORS:
                starts = Junction("or", starts, StringMatch("contains", prop, separator + folded))
            return starts
        case TextSearch():
            searchable = " or ".join(f'"{p.name}:text"' for p in USERS.searchable)
            raise QueryOptionError(
                f"$search on users must name the property to search: {searchable}."
            )
    return node


def _case_sensitive_like(connection: Any, _record: Any) -> None:
    connection.execute("PRAGMA case_sensitive_like=ON")


def _same(_prop: Any, value: Any) -> Any:
    """Every user property is a string, stored as it is compared."""
    return value


def _key_values(user: User, keys: tuple[OrderKey, ...]) -> tuple[str | None, ...]:
    """The values of the order `keys` of `user`, as the query compares them."""
    values: list[str | None] = []
    for key in keys:
        value = getattr(user, USER_PROPERTIES[key.name].attribute)
        values.append(ascii_lower(value) if key.name in FOLDED and value is not None else value)
    return tuple(values)


def _user(row: Any) -> User:
    return User(row["id"], row["displayName"], row["mail"], row["userPrincipalName"])


def _error(directory: UserDirectory, exc: SQLAlchemyError) -> SourceError:
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
    where = directory.engine.url.render_as_string(hide_password=True)
    return SourceError(f"user directory ({where}): {cause}")
