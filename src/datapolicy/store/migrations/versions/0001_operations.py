"""The operations table and its indexes.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("storage_location", sa.String(2048), nullable=True),
        sa.Column("submitted_at", sa.BigInteger, nullable=False),
        sa.Column("completed_at", sa.BigInteger, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_operations_submitted", "operations", ["submitted_at", "id"])
    op.create_index("ix_operations_user", "operations", ["user_id", "submitted_at", "id"])
    op.create_index("ix_operations_status", "operations", ["status", "submitted_at", "id"])
    op.create_index("ix_operations_completed", "operations", ["completed_at", "id"])


def downgrade() -> None:
    op.drop_table("operations")
