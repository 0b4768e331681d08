"""The operations' change log: a row naming the operation for every row of `operations` a
statement inserts, updates or deletes, written by triggers on SQLite, so that the GET-by-id read
cache (web/hot_path/readcache.py) drops only the operations a commit changed, in whatever process
and by whatever code it was made, instead of everything it holds.

A row that `INSERT OR REPLACE` or `UPDATE OR REPLACE` deletes because another takes its
idempotency key is named too, by triggers that run before the statement: SQLite runs no delete
trigger for such a row (unless the connection turned `recursive_triggers` on). The service
never replaces a row; another program writing to the file might.

The triggers keep the newest `KEEP` entries: every 256th entry deletes those older than that.
A reader that fell further behind sees a gap in the sequence and empties its whole cache.

On PostgreSQL the table is made too, so that both schemas are tables.py's, but no trigger writes
it: no cache reads it there (store/changes.py).

A later revision that rebuilds `operations` on SQLite (Alembic's batch mode copies it to a new
table) drops these triggers with it and must make them again: tests/store/test_changes.py checks
them at the head revision.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

KEEP = 4096

_TRIGGERS = {
    "operation_changes_insert": """
        CREATE TRIGGER operation_changes_insert AFTER INSERT ON operations BEGIN
            INSERT INTO operation_changes (operation_id) VALUES (NEW.id);
        END""",
    "operation_changes_update": """
        CREATE TRIGGER operation_changes_update AFTER UPDATE ON operations BEGIN
            INSERT INTO operation_changes (operation_id) VALUES (NEW.id);
            INSERT INTO operation_changes (operation_id)
                SELECT OLD.id WHERE OLD.id IS NOT NEW.id;
        END""",
    "operation_changes_delete": """
        CREATE TRIGGER operation_changes_delete AFTER DELETE ON operations BEGIN
            INSERT INTO operation_changes (operation_id) VALUES (OLD.id);
        END""",
    "operation_changes_replace_insert": """
        CREATE TRIGGER operation_changes_replace_insert BEFORE INSERT ON operations
        WHEN NEW.idempotency_key IS NOT NULL BEGIN
            INSERT INTO operation_changes (operation_id)
                SELECT id FROM operations
                WHERE idempotency_key = NEW.idempotency_key AND id IS NOT NEW.id;
        END""",
    "operation_changes_replace_update": """
        CREATE TRIGGER operation_changes_replace_update BEFORE UPDATE OF idempotency_key
        ON operations WHEN NEW.idempotency_key IS NOT NULL BEGIN
            INSERT INTO operation_changes (operation_id)
                SELECT id FROM operations
                WHERE idempotency_key = NEW.idempotency_key AND id IS NOT OLD.id;
        END""",
    "operation_changes_prune": f"""
        CREATE TRIGGER operation_changes_prune AFTER INSERT ON operation_changes
        WHEN NEW.seq % 256 = 0 BEGIN
            DELETE FROM operation_changes WHERE seq <= NEW.seq - {KEEP};
        END""",
}


def upgrade() -> None:
    text = sa.String(36).with_variant(sa.String(36, collation="C"), "postgresql")
    op.create_table(
        "operation_changes",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("operation_id", text, nullable=False),
        sqlite_autoincrement=True,  # a seq is never used twice
    )
    if op.get_bind().dialect.name == "sqlite":
        for statement in _TRIGGERS.values():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("operation_changes")
