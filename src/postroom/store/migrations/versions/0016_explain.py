"""explain: how each inbound message was threaded

Revision ID: 0016_explain
Revises: 0012_analytics_intervals
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_explain"
down_revision = "0014_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("thread_reason", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("thread_reason")
