"""Worker losses counted apart from export failures, and why each attempt ended.

`worker_losses` counts the claims that took an operation over from a worker whose lease had
expired (it died or stalled): those are not the export's fault, so they are limited by
`[engine] max_worker_losses`, not `max_attempts` (export failures are `attempts -
worker_losses`). `attempt_history` keeps one line per ended attempt (`attempt N: code:
reason`), so that the error of an operation that finally fails says what happened each time.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("worker_losses", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column(
                "attempt_history",
                sa.String().with_variant(sa.String(collation="C"), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("attempt_history")
        batch.drop_column("worker_losses")
