"""The user directory: which people exist, and their Graph-shaped names.

Read from a configured SQL table or query. The web layer answers `/users` from it, and the
engine puts the user's entry in the package manifest.
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
    cast,
    create_engine,
    select,
    text,
)
from sqlalchemy import column as sql_column
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from datapolicy.config import DirectoryConfig
from datapolicy.engine.sources.base import SourceError
from datapolicy.engine.sources.sqltypes import exactly_equal


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


class UserDirectory:
    """Users from a SQL table (or query), ordered and paged by id."""

    def __init__(self, config: DirectoryConfig):
        self.config = config
        self.engine = create_engine(config.url, pool_pre_ping=True)
        self._source: Any = None

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

            self._source = (
                select(
                    cast(column(config.id_column, "id"), String).label("id"),
                    column(config.display_name_column, "displayName"),
                    column(config.mail_column, "mail"),
                    column(config.user_principal_name_column, "userPrincipalName"),
                )
                .select_from(base)
                .subquery("users")
            )
        return self._source

    def check(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(select(self._users()).limit(1)).all()

    def get(self, user_id: str) -> User | None:
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

    def page(self, size: int, after: str | None) -> list[User]:
        """Up to `size` users in id order, starting after the id `after` (which the caller has
        checked holds no NUL: PostgreSQL's text cannot)."""
        users = self._users()
        statement: Select[Any] = select(users).order_by(users.c.id).limit(size)
        if after is not None:
            statement = statement.where(users.c.id > after)
        return [_user(row) for row in self._run(statement, {})]

    def _run(self, statement: Any, parameters: dict[str, Any]) -> list[Any]:
        try:
            with self.engine.connect() as connection:
                return list(connection.execute(statement, parameters).mappings())
        except SQLAlchemyError as exc:
            raise _error(self, exc) from None

    def close(self) -> None:
        self.engine.dispose()


def _user(row: Any) -> User:
    return User(row["id"], row["displayName"], row["mail"], row["userPrincipalName"])


def _error(directory: UserDirectory, exc: SQLAlchemyError) -> SourceError:
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
    where = directory.engine.url.render_as_string(hide_password=True)
    return SourceError(f"user directory ({where}): {cause}")
