"""analytics: conversation details, segments, metric observations and the projector's checkpoint

Revision ID: 0010_analytics
Revises: 0009_webhooks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_analytics"
down_revision = "0009_webhooks"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "analytics_conversations",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("ended_at", UTC, nullable=True),
        sa.Column("direction", sa.String(length=20), nullable=False),
        sa.Column("route", sa.String(length=320), nullable=True),
        sa.Column("first_queue", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("wrapup_code", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_analytics_conversations")),
    )
    op.create_index(
        op.f("ix_analytics_conversations_conversation_id"),
        "analytics_conversations",
        ["conversation_id"],
    )
    op.create_index(
        op.f("ix_analytics_conversations_started_at"), "analytics_conversations", ["started_at"]
    )
    op.create_table(
        "analytics_segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_key", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=True),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("ended_at", UTC, nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_segments")),
    )
    op.create_index(
        op.f("ix_analytics_segments_conversation_key"), "analytics_segments", ["conversation_key"]
    )
    op.create_index(
        "ix_analytics_segments_agent_started", "analytics_segments", ["agent", "started_at"]
    )
    op.create_table(
        "analytics_observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_key", sa.String(length=40), nullable=False),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("start", UTC, nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=True),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("route", sa.String(length=320), nullable=True),
        sa.Column("wrapup_code", sa.String(length=200), nullable=True),
        sa.Column("direction", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_observations")),
    )
    op.create_index(
        op.f("ix_analytics_observations_conversation_key"),
        "analytics_observations",
        ["conversation_key"],
    )
    op.create_index(
        "ix_analytics_observations_at_metric", "analytics_observations", ["at", "metric"]
    )
    op.create_table(
        "analytics_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("gaps", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_checkpoint")),
    )


def downgrade() -> None:
    op.drop_table("analytics_checkpoint")
    op.drop_index("ix_analytics_observations_at_metric", table_name="analytics_observations")
    op.drop_index(
        op.f("ix_analytics_observations_conversation_key"), table_name="analytics_observations"
    )
    op.drop_table("analytics_observations")
    op.drop_index("ix_analytics_segments_agent_started", table_name="analytics_segments")
    op.drop_index(op.f("ix_analytics_segments_conversation_key"), table_name="analytics_segments")
    op.drop_table("analytics_segments")
    op.drop_index(
        op.f("ix_analytics_conversations_started_at"), table_name="analytics_conversations"
    )
    op.drop_index(
        op.f("ix_analytics_conversations_conversation_id"), table_name="analytics_conversations"
    )
    op.drop_table("analytics_conversations")
