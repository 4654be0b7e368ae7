"""auto-acknowledgement ledger: the last automatic reply per address

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auto_acks",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_auto_acks")),
    )


def downgrade() -> None:
    op.drop_table("auto_acks")
