"""An erasure's request as its approver must see it: `dry_run` (the operation's `dryRun`: true or
false for an erasure, null for an export) and `requested_by` (who started it, the caller as
`[application, subject]`: the operation's `approval.requestedBy`), in columns of their own so that
they are read with the row, as `approved_by` is (0013), rather than parsed out of `erasure_state`
on every read. Existing erasures have both in their `erasure_state`, copied here; the dry-run flag
as the worker reads it (`bool(state.get("dryRun"))`), so that what is shown is what runs.

Both columns are added in place (`ALTER TABLE ... ADD COLUMN`, also on SQLite) and dropped in
place (`ALTER TABLE ... DROP COLUMN`, SQLite 3.35 or later): Alembic's batch mode would copy the
table on SQLite, and drop the change log's triggers with it (revision 0014).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_ERASURE = "erasePersonalData"


def upgrade() -> None:
    # On PostgreSQL in the "C" collation, as every string column (tables.py text_column).
    text = sa.String().with_variant(sa.String(collation="C"), "postgresql")
    op.add_column("operations", sa.Column("dry_run", sa.Boolean(), nullable=True))
    op.add_column("operations", sa.Column("requested_by", text, nullable=True))
    operations = sa.table(
        "operations",
        sa.column("id", sa.String()),
        sa.column("operation_type", sa.String()),
        sa.column("erasure_state", sa.String()),
        sa.column("dry_run", sa.Boolean()),
        sa.column("requested_by", sa.String()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(operations.c.id, operations.c.erasure_state).where(
            operations.c.operation_type == _ERASURE
        )
    ).all()
    for operation_id, text_state in rows:
        state = _state(text_state)
        requester = state.get("requestedBy")
        connection.execute(
            operations.update()
            .where(operations.c.id == operation_id)
            .values(
                dry_run=bool(state.get("dryRun")),
                requested_by=requester if isinstance(requester, str) and requester else None,
            )
        )


def _state(text_state: str | None) -> dict[str, object]:
    """An erasure's stored state, as the worker reads it (`{}` for none)."""
    state = json.loads(text_state or "{}")
    return state if isinstance(state, dict) else {}


def downgrade() -> None:
    op.drop_column("operations", "requested_by")
    op.drop_column("operations", "dry_run")
