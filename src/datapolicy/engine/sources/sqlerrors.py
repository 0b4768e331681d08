"""Which database errors another attempt may cure: the one place that decides it for SQL sources.

A worker retries a failed export after backoff (engine/worker.py). That helps when the database
was unreachable, restarted, overloaded, or chose this transaction as a deadlock victim; it cannot
help when the database refused the statement itself (a column or table that is not there, a
syntax error, a permission not granted), and retrying those only delays the answer by the whole
backoff. The DB-API exception classes do not draw that line on their own: pymysql raises
OperationalError for MariaDB's "unknown column" (1054) and "access denied" (1142), and sqlite3
raises OperationalError for "no such column". So each driver's own code is read first (the
SQLSTATE on PostgreSQL, the error number on MariaDB/MySQL, the result code on SQLite), and only
an error without one falls back to its class. Anything not known to be permanent is transient:
the behaviour before this module, and a retry too many costs less than a lost export.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import exc as sa

# PostgreSQL SQLSTATE classes (and codes) another attempt may cure: connection exceptions,
# transaction rollbacks (serialization failures, deadlocks), insufficient resources, operator
# intervention (statement timeouts, shutdowns), system and internal errors, lock not available.
_POSTGRESQL_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58", "XX"})
_POSTGRESQL_TRANSIENT_CODES = frozenset({"55P03"})

# MariaDB/MySQL error numbers that name a mistake in the statement or the grants, whatever class
# the driver gives them: access denied (1044, 1045, 1142, 1143, 1227, 1370), unknown database
# (1049), unknown or ambiguous table or column (1051, 1052, 1054, 1109, 1146), syntax (1064),
# wrong row shape (1241), illegal mix of collations (1267), a missing function (1305, 1630), and
# a view that no longer matches its tables (1356).
_MYSQL_PERMANENT = frozenset(
    {1044, 1045, 1049, 1051, 1052, 1054, 1064, 1109, 1142, 1143, 1146, 1227, 1241, 1267}
    | {1305, 1356, 1370, 1630}
)

# SQLite primary result codes for a statement the database refuses: SQLITE_ERROR (no such
# table or column, syntax), SQLITE_PERM, SQLITE_MISMATCH, SQLITE_AUTH, SQLITE_RANGE. Busy and
# locked databases, I/O errors and files that cannot be opened may pass.
_SQLITE_PERMANENT = frozenset({1, 3, 20, 23, 25})

# DB-API classes for errors in the statement or its data, when no driver code says otherwise.
_PERMANENT_CLASSES = (sa.ProgrammingError, sa.IntegrityError, sa.DataError, sa.NotSupportedError)


def is_transient(error: Exception) -> bool:
    """Whether another attempt at the same read may succeed.

    `error` is what reading raised: a SQLAlchemy error (wrapping the driver's in `.orig`), or a
    driver's own (psycopg's, from a COPY)."""
    if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
        return True  # the connection was lost mid-statement
    driver = getattr(error, "orig", None) or error
    sqlstate = getattr(driver, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return sqlstate[:2] in _POSTGRESQL_TRANSIENT_CLASSES or sqlstate in (
            _POSTGRESQL_TRANSIENT_CODES
        )
    if isinstance(driver, sqlite3.Error) and driver.sqlite_errorcode is not None:
        return driver.sqlite_errorcode & 0xFF not in _SQLITE_PERMANENT
    number = _mysql_error_number(driver)
    if number is not None and number in _MYSQL_PERMANENT:
        return False
    return not isinstance(error, _PERMANENT_CLASSES)


def _mysql_error_number(driver: object) -> int | None:
    """pymysql's (and mysqlclient's) error number: the first of the exception's arguments."""
    module = type(driver).__module__
    if not module.startswith(("pymysql", "MySQLdb")):
        return None
    arguments = getattr(driver, "args", ())
    return arguments[0] if arguments and isinstance(arguments[0], int) else None
