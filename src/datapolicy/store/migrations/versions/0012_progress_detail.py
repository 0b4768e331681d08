"""Progress detail: what a running export writes, recorded by its heartbeat with `progress`
(the operation's `progressDetail`): `progress_part`, the table, query or file it is on, and
`records_written` and `bytes_written`, the records and file bytes written so far. Null for
operations that never recorded one (erasures, and operations from before this revision).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        # On PostgreSQL in the "C" collation, as every string column (tables.py text_column).
        text = sa.String().with_variant(sa.String(collation="C"), "postgresql")
        batch.add_column(sa.Column("progress_part", text, nullable=True))
        batch.add_column(sa.Column("records_written", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("bytes_written", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("bytes_written")
        batch.drop_column("records_written")
        batch.drop_column("progress_part")
