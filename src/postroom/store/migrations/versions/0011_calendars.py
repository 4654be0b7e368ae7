"""calendars: business-hours calendars that queues' service-level targets count in

Revision ID: 0011_calendars
Revises: 0013_analytics_users
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_calendars"
down_revision = "0013_analytics_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendars",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendars")),
        sa.UniqueConstraint("name", name=op.f("uq_calendars_name")),
    )


def downgrade() -> None:
    op.drop_table("calendars")
