"""The operation store's tables, in SQLAlchemy Core: the one description that both the queries
and the Alembic migrations are checked against.

Times are stored as integer microseconds since the Unix epoch (UTC): the same exact, sortable
representation on every database, with no driver-specific time-zone handling to get wrong.

Strings compare and sort by their bytes (their code points) on both databases: SQLite's default
BINARY collation does, and on PostgreSQL every string column is in the "C" collation (migration
0003), whatever the database's default. So `$orderby`, `gt`/`lt` on strings and the keyset
bounds of `$skiptoken` give the same order on both, and the indexes serve them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, text
from sqlalchemy.types import TypeEngine

from datapolicy.model import MAX_STORAGE_LOCATION_LENGTH, MAX_USER_ID_LENGTH

metadata = MetaData()


def text_column(length: int | None) -> TypeEngine[str]:
    """VARCHAR(length); on PostgreSQL in the "C" (byte order) collation, as SQLite's BINARY."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


operations = Table(
    "operations",
    metadata,
    Column("id", text_column(36), primary_key=True),
    Column("user_id", text_column(MAX_USER_ID_LENGTH), nullable=False),
    Column("status", text_column(32), nullable=False),
    Column("progress", Float, nullable=False),
    Column("storage_location", text_column(MAX_STORAGE_LOCATION_LENGTH), nullable=True),
    Column("submitted_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    Column("version", Integer, nullable=False),
    # The work queue (migration 0002): leases, retries, outcome, deletion.
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("lease_owner", text_column(None), nullable=True),  # unbounded: it holds the host name
    Column("lease_expires_at", BigInteger, nullable=True),
    Column("next_attempt_at", BigInteger, nullable=True),
    Column("started_at", BigInteger, nullable=True),
    Column("error_code", text_column(64), nullable=True),
    Column("error_message", text_column(2000), nullable=True),
    # Unbounded: where a target published a package, which may be longer than the location asked
    # for (SQLite never enforced the 2048 of migration 0002; PostgreSQL would).
    Column("package_location", text_column(None), nullable=True),
    Column("deleted_at", BigInteger, nullable=True),  # deletion requested: hidden from the API
    Column("idempotency_key", text_column(200), nullable=True),
    # Each index ends in the tie-break key `id`, so that a keyset page (`$skiptoken`) under the
    # default order, or filtered by user or status, is an index range scan.
    Index("ix_operations_submitted", "submitted_at", "id"),
    Index("ix_operations_user", "user_id", "submitted_at", "id"),
    Index("ix_operations_status", "status", "submitted_at", "id"),
    Index("ix_operations_completed", "completed_at", "id"),  # PostgreSQL: NULLS FIRST (0003)
    Index("ix_operations_queue", "status", "next_attempt_at"),
    Index(
        "ix_operations_deleted",
        "deleted_at",
        sqlite_where=text("deleted_at IS NOT NULL"),
        postgresql_where=text("deleted_at IS NOT NULL"),
    ),
    # Unique (migration 0003): a key names at most one operation. A key is freed, by the store,
    # when its operation leaves the 24-hour window or is deleted.
    Index("ix_operations_idempotency", "idempotency_key", unique=True),
)
