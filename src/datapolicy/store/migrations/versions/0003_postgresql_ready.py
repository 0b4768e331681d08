"""Unique idempotency keys; on PostgreSQL, byte-order strings and SQLite's NULL order.

Both databases: an idempotency key names at most one row (a unique index), so concurrent starts
with one key, in several API processes, make one operation. Rows that held a key no longer in
use (a newer row has it, or the operation was deleted) give it up first; the store frees a key
the same way before reusing it after the 24-hour window.

PostgreSQL only, so that it sorts and compares as SQLite does:

- every string column is in the "C" collation (byte order, as SQLite's BINARY), whatever the
  database's default collation: `$orderby`, `gt`/`lt` on strings and `$skiptoken` bounds agree
  with SQLite, and the indexes serve them;
- `ix_operations_completed` sorts NULL first, as SQLite's indexes do and as OData orders them,
  so `$orderby=completedDateTime` (asc or desc) is an index scan;
- `lease_owner` and `package_location` lose their length limits, which SQLite never enforced
  (a worker's name holds the host name; a published location may be longer than the one
  asked for). Their declared SQLite types are left as they are: SQLite ignores the lengths.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# (column, length) of every string column; None: unbounded from here on.
_STRINGS = (
    ("id", 36),
    ("user_id", 256),
    ("status", 32),
    ("storage_location", 2048),
    ("lease_owner", None),
    ("error_code", 64),
    ("error_message", 2000),
    ("package_location", None),
    ("idempotency_key", 200),
)
_FORMER_LENGTHS = {"lease_owner": 64, "package_location": 2048}


def upgrade() -> None:
    operations = sa.table(
        "operations",
        sa.column("id", sa.String),
        sa.column("submitted_at", sa.BigInteger),
        sa.column("deleted_at", sa.BigInteger),
        sa.column("idempotency_key", sa.String),
    )
    newer = operations.alias("newer")
    superseded = (
        sa.select(sa.literal(1))
        .where(
            newer.c.idempotency_key == operations.c.idempotency_key,
            newer.c.deleted_at.is_(None),
            sa.or_(
                newer.c.submitted_at > operations.c.submitted_at,
                sa.and_(
                    newer.c.submitted_at == operations.c.submitted_at,
                    newer.c.id > operations.c.id,
                ),
            ),
        )
        .exists()
    )
    op.execute(
        operations.update()
        .where(
            operations.c.idempotency_key.is_not(None),
            sa.or_(operations.c.deleted_at.is_not(None), superseded),
        )
        .values(idempotency_key=None)
    )
    op.drop_index("ix_operations_idempotency", "operations")
    op.create_index("ix_operations_idempotency", "operations", ["idempotency_key"], unique=True)
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, length in _STRINGS:
        op.alter_column("operations", name, type_=sa.String(length, collation="C"))
    op.drop_index("ix_operations_completed", "operations")
    op.create_index(
        "ix_operations_completed",
        "operations",
        [sa.text("completed_at NULLS FIRST"), "id"],
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_operations_completed", "operations")
        op.create_index("ix_operations_completed", "operations", ["completed_at", "id"])
        for name, length in _STRINGS:
            former = _FORMER_LENGTHS.get(name, length)
            op.alter_column("operations", name, type_=sa.String(former))
    op.drop_index("ix_operations_idempotency", "operations")
    op.create_index("ix_operations_idempotency", "operations", ["idempotency_key"])
