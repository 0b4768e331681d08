"""Erasure: an operation's `operation_type` (exportPersonalData, erasePersonalData) and an
erasure's `erasure_state` (its dry-run flag, who requested and approved it, and the sources it
has committed with their counts, so that a retried erasure resumes where it stopped), and
`approval_pending` (1 while an erasure waits for approval: the queue does not claim it).
Existing operations are exports.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _text(length: int | None) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(
            sa.Column(
                "operation_type",
                _text(32),
                nullable=False,
                server_default="exportPersonalData",
            )
        )
        batch.add_column(sa.Column("erasure_state", _text(None), nullable=True))
        batch.add_column(
            sa.Column("approval_pending", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("approval_pending")
        batch.drop_column("erasure_state")
        batch.drop_column("operation_type")
