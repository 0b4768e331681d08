"""Package retention: when the worker deleted a published package, and how that went.

`package_deleted_at` is when retention dealt with the package (deleted it, found it gone, or
could not delete it); `package_deletion` says which (`deleted`, `absent`, `notDeletable`,
`refused`). The partial index holds only the published packages retention has not dealt with
yet, ordered by completion, so the sweep's "oldest first" is a short range scan however many
old operations the table keeps.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PENDING = "package_location IS NOT NULL AND package_deleted_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("package_deleted_at", sa.BigInteger, nullable=True))
        batch.add_column(
            sa.Column(
                "package_deletion",
                sa.String(32).with_variant(sa.String(32, collation="C"), "postgresql"),
                nullable=True,
            )
        )
    op.create_index(
        "ix_operations_retention",
        "operations",
        ["completed_at", "id"],
        sqlite_where=sa.text(_PENDING),
        postgresql_where=sa.text(_PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_operations_retention", "operations")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("package_deletion")
        batch.drop_column("package_deleted_at")
