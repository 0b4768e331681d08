"""Erasure receipts: `package_receipt` is 1 when the published package holds an erasure's
receipt (a complete erasure, not a dry run), the organisation's proof that it erased the person.
Package retention keeps those for `[erasure] receipt_retention` (by default until the operation
is deleted) instead of `[engine] package_retention`, which a dry run's package (the person's
rows) and an export's follow. The flag is a column, written when the package is published, so
that the sweep selects by it without reading each erasure's `erasure_state` (JSON); the
retention index leads with it, so that receipts kept for years are not read at every sweep.

Erasures published before this revision are marked from their `erasure_state`: its `dryRun`.

The column is added, and the index made anew, without rebuilding `operations` on SQLite (which
would drop the triggers of 0014).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_PENDING = "package_location IS NOT NULL AND package_deleted_at IS NULL"
_CHUNK = 500  # ids per UPDATE when marking existing receipts


def _retention_index(*columns: str) -> None:
    op.create_index(
        "ix_operations_retention",
        "operations",
        list(columns),
        sqlite_where=sa.text(_PENDING),
        postgresql_where=sa.text(_PENDING),
    )


def upgrade() -> None:
    op.add_column(
        "operations",
        sa.Column("package_receipt", sa.Integer(), nullable=False, server_default="0"),
    )
    operations = sa.table(
        "operations",
        sa.column("id", sa.String()),
        sa.column("operation_type", sa.String()),
        sa.column("erasure_state", sa.String()),
        sa.column("package_location", sa.String()),
        sa.column("package_receipt", sa.Integer()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(operations.c.id, operations.c.erasure_state).where(
            operations.c.operation_type == "erasePersonalData",
            operations.c.package_location.is_not(None),
        )
    ).all()
    receipts = [id_ for id_, state in rows if not json.loads(state or "{}").get("dryRun")]
    for start in range(0, len(receipts), _CHUNK):
        connection.execute(
            operations.update()
            .where(operations.c.id.in_(receipts[start : start + _CHUNK]))
            .values(package_receipt=1)
        )
    op.drop_index("ix_operations_retention", "operations")
    _retention_index("package_receipt", "completed_at", "id")


def downgrade() -> None:
    op.drop_index("ix_operations_retention", "operations")
    _retention_index("completed_at", "id")
    op.drop_column("operations", "package_receipt")
