"""How a PostgreSQL source's connections read dates, times and intervals: psycopg's own (C)
loaders, wrapped (sqltypes.py describes what every database's values become).

A module of its own so that psycopg is imported only by an engine for a PostgreSQL source
(sqltypes.py `exporting_engine`): every `serve`, `worker` and `config check` on the SQLite store
without one is spared it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import DataError
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg.types.string import TextLoader

from datapolicy.engine.sources.jsonlines import datetime_value, iso8601


def set_up_postgresql(dbapi_connection: Any, _record: Any) -> None:
    """The `connect` hook of a PostgreSQL source's engine (sqltypes.py `exporting_engine`):
    the loaders below, times with zones in UTC, intervals as ISO 8601 text."""
    for name, loader in _LOADERS.items():
        dbapi_connection.adapters.register_loader(name, loader)
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute("SET intervalstyle = 'iso_8601'")
    dbapi_connection.commit()


class _Loader(Loader):
    """Wraps psycopg's own (C) loader for a type, to change what a few values become at the
    cost of one call, not psycopg's pure-Python parsing."""

    base: type[Loader]

    def __init__(self, oid: int, context: Any = None):
        super().__init__(oid, context)
        self._load = self.base(oid, context).load


class _TimeText(_Loader):
    """A time of day (with or without a zone) as `jsonlines.iso8601` text (`12:00:00.01`,
    `12:00:00+05:30`), as `to_json` writes it, so that orjson never formats one: orjson 3.13
    drops a leading zero of the fraction (`.010000` as `.10000`), and refuses a zone."""

    def load(self, data: Any) -> Any:
        return iso8601(self._load(data))


class _Lenient(_Loader):
    """A timestamp spelled as `to_json` (the COPY path) writes it (`jsonlines.datetime_value`).
    A date or timestamp Python cannot hold (`infinity`, BC, after 9999) is PostgreSQL's own
    text, with `to_json`'s `T` between date and time, instead of an error that stops the
    export. (A BC offset stays `+00`, where `to_json` has `+00:00`.)"""

    def load(self, data: Any) -> Any:
        try:
            value = self._load(data)
        except DataError:
            return bytes(data).decode().replace(" ", "T", 1)
        return datetime_value(value) if isinstance(value, datetime) else value


def _wrapping(wrapper: type[_Loader], name: str) -> type[_Loader]:
    base = psycopg.adapters.get_loader(psycopg.adapters.types[name].oid, Format.TEXT)
    assert base is not None
    return type(f"{wrapper.__name__}_{name}", (wrapper,), {"base": base})


_LOADERS = {
    "time": _wrapping(_TimeText, "time"),
    "timetz": _wrapping(_TimeText, "timetz"),
    "date": _wrapping(_Lenient, "date"),
    "timestamp": _wrapping(_Lenient, "timestamp"),
    "timestamptz": _wrapping(_Lenient, "timestamptz"),
    "interval": TextLoader,
}
