"""Approval: who approved an erasure that needed approval (`approved_by`, the caller as
`[application, subject]`) and when (`approved_at`, microseconds), in columns of their own so
that the operation's `approval` property is read with the row, as `approval_pending` is.
Erasures approved before this revision have both in their `erasure_state`, copied here.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # stored times count microseconds from it


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        # On PostgreSQL in the "C" collation, as every string column (tables.py text_column).
        text = sa.String().with_variant(sa.String(collation="C"), "postgresql")
        batch.add_column(sa.Column("approved_by", text, nullable=True))
        batch.add_column(sa.Column("approved_at", sa.BigInteger(), nullable=True))
    operations = sa.table(
        "operations",
        sa.column("id", sa.String()),
        sa.column("erasure_state", sa.String()),
        sa.column("approved_by", sa.String()),
        sa.column("approved_at", sa.BigInteger()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(operations.c.id, operations.c.erasure_state).where(
            operations.c.erasure_state.like('%"approvedBy"%')
        )
    ).all()
    for operation_id, text_state in rows:
        state = json.loads(text_state)
        if "approvedBy" not in state:
            continue
        at = state.get("approvedAt")
        micros = None
        if isinstance(at, str):  # model.format_datetime's ISO 8601 with a Z
            moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
            micros = (moment - _EPOCH) // timedelta(microseconds=1)
        connection.execute(
            operations.update()
            .where(operations.c.id == operation_id)
            .values(approved_by=state["approvedBy"], approved_at=micros)
        )


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("approved_at")
        batch.drop_column("approved_by")
