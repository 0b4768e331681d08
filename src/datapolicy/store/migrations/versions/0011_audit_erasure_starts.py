"""The partial index of starts also holds erasure starts (`erasure.requested`), so that the
worker's entries about an erasure (`erasure.sourceCommitted`, `erasure.completed`, the package's
deletion) find the request that started it, as an export's do (store/audit/log.py
`request_of_start`).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _index(condition: str) -> None:
    op.drop_index("ix_audit_log_started", table_name="audit_log")
    op.create_index(
        "ix_audit_log_started",
        "audit_log",
        ["operation_id"],
        sqlite_where=sa.text(condition),
        postgresql_where=sa.text(condition),
    )


def upgrade() -> None:
    _index("action IN ('operation.started', 'erasure.requested')")


def downgrade() -> None:
    _index("action = 'operation.started'")
