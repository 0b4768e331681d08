"""The audit chain's signed checkpoint: its head anchored outside the chain
(store/audit/chain.py).

The head row alone cannot show that entries were deleted from the end: whoever deletes them
can move the head back too. Each append now also writes the head's sequence and hash signed
with the service's ES256 key (a JWS); `verify` checks the signature and that the chain ends
where the checkpoint says. Deleting the tail would need a signature only the key's holder can
make. One row, written in the appending transaction, so it never disagrees with the head.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _text(length: int | None) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("hash", _text(64), nullable=False),
        sa.Column("signature", _text(None), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoint")
