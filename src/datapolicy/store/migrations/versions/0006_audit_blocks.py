"""Audit blocks: read entries appended as one chain link per batch (store/audit/chain.py).

Reads and lists are most of the audit trail and are appended in batches. A row, an index
entry and a hash per read cost the API several microseconds of CPU per GET (docs/benchmarks.md);
a block holds a batch's entries in one row, as a JSON array, linked into the same chain as the
single entries of `audit_log` with one hash over all of them. The same triggers guard it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# audit_log_refuse() is migration 0004's.
_POSTGRESQL_GUARDS = (
    "CREATE TRIGGER audit_block_append_only BEFORE UPDATE OR DELETE ON audit_block "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse()",
    "CREATE TRIGGER audit_block_no_truncate BEFORE TRUNCATE ON audit_block "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse()",
)
_SQLITE_GUARDS = (
    "CREATE TRIGGER audit_block_no_update BEFORE UPDATE ON audit_block "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER audit_block_no_delete BEFORE DELETE ON audit_block "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
)


def _text(length: int | None) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_block",
        sa.Column("first_sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.Column("first_at", sa.BigInteger, nullable=False),
        sa.Column("last_at", sa.BigInteger, nullable=False),
        sa.Column("entries", sa.LargeBinary, nullable=False),
        sa.Column("previous_hash", _text(64), nullable=False),
        sa.Column("hash", _text(64), nullable=False),
    )
    guards = _POSTGRESQL_GUARDS if op.get_bind().dialect.name == "postgresql" else _SQLITE_GUARDS
    for statement in guards:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("audit_block")  # its triggers go with it
