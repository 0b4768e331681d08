"""Idempotency keys answer only the request they were given with: `idempotency_request`.

A start with an idempotency key now records a digest of what it asked for (the user and the
storage location), so that a later start with the same key and a different request is refused
(409) instead of being answered with the first request's operation (docs/graph-compatibility.md,
"Starting is idempotent"). Keys themselves are now stored scoped to their caller (a digest of the
token's client application and subject with the key), so keys stored before this revision are
never matched again; they are freed as usual when their operation leaves the 24-hour window.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(
            sa.Column(
                "idempotency_request",
                sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("idempotency_request")
