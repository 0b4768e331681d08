"""The operations table becomes the export engine's work queue.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("attempts", sa.Integer, {"nullable": False, "server_default": "0"}),
    ("lease_owner", sa.String(64), {"nullable": True}),
    ("lease_expires_at", sa.BigInteger, {"nullable": True}),
    ("next_attempt_at", sa.BigInteger, {"nullable": True}),
    ("started_at", sa.BigInteger, {"nullable": True}),
    ("error_code", sa.String(64), {"nullable": True}),
    ("error_message", sa.String(2000), {"nullable": True}),
    ("package_location", sa.String(2048), {"nullable": True}),
    ("deleted_at", sa.BigInteger, {"nullable": True}),
    ("idempotency_key", sa.String(200), {"nullable": True}),
)


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        for name, type_, options in _COLUMNS:
            batch.add_column(sa.Column(name, type_, **options))
    op.create_index("ix_operations_queue", "operations", ["status", "next_attempt_at"])
    # Partial: only rows whose deletion is pending (few, short-lived) are indexed, for the
    # cleanup claim. A full index would look, to SQLite's planner (which has no statistics),
    # like the best match for every list's `deleted_at IS NULL`: a full scan and sort per page.
    op.create_index(
        "ix_operations_deleted",
        "operations",
        ["deleted_at"],
        sqlite_where=sa.text("deleted_at IS NOT NULL"),
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )
    op.create_index("ix_operations_idempotency", "operations", ["idempotency_key"])


def downgrade() -> None:
    op.drop_index("ix_operations_idempotency", "operations")
    op.drop_index("ix_operations_deleted", "operations")
    op.drop_index("ix_operations_queue", "operations")
    with op.batch_alter_table("operations") as batch:
        for name, _, _ in reversed(_COLUMNS):
            batch.drop_column(name)
