"""analytics: agents' status segments and conversation tags

Revision ID: 0013_analytics_users
Revises: 0010_analytics
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_analytics_users"
down_revision = "0010_analytics"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "analytics_user_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=False),
        sa.Column("presence", sa.String(length=20), nullable=False),
        sa.Column("routing_status", sa.String(length=20), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("ended_at", UTC, nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_user_segments")),
    )
    op.create_index(
        op.f("ix_analytics_user_segments_started_at"), "analytics_user_segments", ["started_at"]
    )
    op.create_index(
        "ix_analytics_user_segments_agent_started",
        "analytics_user_segments",
        ["agent", "started_at"],
    )
    op.create_table(
        "analytics_conversation_tags",
        sa.Column("conversation_key", sa.String(length=40), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint(
            "conversation_key", "tag", name=op.f("pk_analytics_conversation_tags")
        ),
    )
    op.create_index(
        "ix_analytics_conversation_tags_tag", "analytics_conversation_tags", ["tag"]
    )


def downgrade() -> None:
    op.drop_index("ix_analytics_conversation_tags_tag", table_name="analytics_conversation_tags")
    op.drop_table("analytics_conversation_tags")
    op.drop_index(
        "ix_analytics_user_segments_agent_started", table_name="analytics_user_segments"
    )
    op.drop_index(
        op.f("ix_analytics_user_segments_started_at"), table_name="analytics_user_segments"
    )
    op.drop_table("analytics_user_segments")
