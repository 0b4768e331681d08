"""The audit trail: the append-only, hash-chained `audit_log` and its one-row `audit_head`.

Triggers refuse to change or delete an entry, and to move the head anywhere but forward, so
an ordinary mistake (or a careless script) cannot edit the trail; someone who drops the
triggers can, and `datapolicy audit verify` then finds the broken link (store/audit/chain.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

GENESIS = "0" * 64  # the "previous hash" of entry 1

_POSTGRESQL_GUARDS = (
    """
    CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only';
    END $$
    """,
    """
    CREATE FUNCTION audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' OR NEW.sequence <= OLD.sequence THEN
            RAISE EXCEPTION 'the audit log''s head only moves forward';
        END IF;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse()",
    "CREATE TRIGGER audit_head_forward BEFORE UPDATE OR DELETE ON audit_head "
    "FOR EACH ROW EXECUTE FUNCTION audit_head_forward()",
)
_SQLITE_GUARDS = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head "
    "WHEN NEW.sequence <= OLD.sequence "
    "BEGIN SELECT RAISE(ABORT, 'the audit log''s head only moves forward'); END",
    "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
    "BEGIN SELECT RAISE(ABORT, 'the audit log''s head only moves forward'); END",
)


def _text(length: int | None) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("action", _text(32), nullable=False),
        sa.Column("subject", _text(None), nullable=False),
        sa.Column("app_id", _text(None), nullable=True),
        sa.Column("user_id", _text(256), nullable=True),
        sa.Column("operation_id", _text(36), nullable=True),
        sa.Column("client", _text(None), nullable=True),
        sa.Column("request_id", _text(None), nullable=True),
        sa.Column("previous_hash", _text(64), nullable=False),
        sa.Column("hash", _text(64), nullable=False),
    )
    # Only starts are indexed (by operation): appends stay sequential (store/tables.py).
    started = sa.text("action = 'operation.started'")
    op.create_index(
        "ix_audit_log_started",
        "audit_log",
        ["operation_id"],
        sqlite_where=started,
        postgresql_where=started,
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("hash", _text(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "sequence": 0, "hash": GENESIS}])
    guards = _POSTGRESQL_GUARDS if op.get_bind().dialect.name == "postgresql" else _SQLITE_GUARDS
    for statement in guards:
        op.execute(statement)


def downgrade() -> None:
    # Dropping the tables drops their triggers; PostgreSQL's functions go separately.
    op.drop_table("audit_head")
    op.drop_table("audit_log")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_head_forward()")
        op.execute("DROP FUNCTION audit_log_refuse()")
