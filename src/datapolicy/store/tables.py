"""The operation store's tables, in SQLAlchemy Core: the one description that both the queries
and the Alembic migrations are checked against.

Times are stored as integer microseconds since the Unix epoch (UTC): the same exact, sortable
representation on every database, with no driver-specific time-zone handling to get wrong.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, text

from datapolicy.model import MAX_STORAGE_LOCATION_LENGTH, MAX_USER_ID_LENGTH

metadata = MetaData()

operations = Table(
    "operations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(MAX_USER_ID_LENGTH), nullable=False),
    Column("status", String(32), nullable=False),
    Column("progress", Float, nullable=False),
    Column("storage_location", String(MAX_STORAGE_LOCATION_LENGTH), nullable=True),
    Column("submitted_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    Column("version", Integer, nullable=False),
    # The work queue (migration 0002): leases, retries, outcome, deletion.
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", BigInteger, nullable=True),
    Column("next_attempt_at", BigInteger, nullable=True),
    Column("started_at", BigInteger, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", String(2000), nullable=True),
    Column("package_location", String(2048), nullable=True),
    Column("deleted_at", BigInteger, nullable=True),  # deletion requested: hidden from the API
    Column("idempotency_key", String(200), nullable=True),
    # Each index ends in the tie-break key `id`, so that a keyset page (`$skiptoken`) under the
    # default order, or filtered by user or status, is an index range scan.
    Index("ix_operations_submitted", "submitted_at", "id"),
    Index("ix_operations_user", "user_id", "submitted_at", "id"),
    Index("ix_operations_status", "status", "submitted_at", "id"),
    Index("ix_operations_completed", "completed_at", "id"),
    Index("ix_operations_queue", "status", "next_attempt_at"),
    Index(
        "ix_operations_deleted",
        "deleted_at",
        sqlite_where=text("deleted_at IS NOT NULL"),
        postgresql_where=text("deleted_at IS NOT NULL"),
    ),
    Index("ix_operations_idempotency", "idempotency_key"),
)
