"""analytics: facts rolled up per interval; indexes for paging details by queue

Revision ID: 0012_analytics_intervals
Revises: 0011_calendars
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_analytics_intervals"
down_revision = "0011_calendars"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "analytics_intervals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("start", UTC, nullable=False),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=True),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("route", sa.String(length=320), nullable=True),
        sa.Column("wrapup_code", sa.String(length=200), nullable=True),
        sa.Column("direction", sa.String(length=20), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sum_us", sa.BigInteger(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("sketch", sa.Text(), nullable=False),
        sa.Column("waits", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_intervals")),
    )
    op.create_index(
        "ix_analytics_intervals_level_start", "analytics_intervals", ["level", "start", "metric"]
    )
    op.create_index(
        "ix_analytics_observations_metric_at",
        "analytics_observations",
        ["metric", "at", "queue", "value"],
    )
    op.create_index(
        "ix_analytics_segments_key_queue", "analytics_segments", ["conversation_key", "queue"]
    )
    op.create_index(
        "ix_analytics_conversations_started_key",
        "analytics_conversations",
        ["started_at", "key"],
    )
    # The two new indexes begin with what these held: one index less to keep up.
    op.drop_index(
        op.f("ix_analytics_conversations_started_at"), table_name="analytics_conversations"
    )
    op.drop_index(op.f("ix_analytics_segments_conversation_key"), table_name="analytics_segments")
    # The intervals come from the facts: empty every analytics table (all of them derive
    # from `events`, the projections of its sinks too) and the checkpoint, so the
    # projector projects the whole log again and fills the intervals as it goes.
    for table in sorted(sa.inspect(op.get_bind()).get_table_names()):
        if table.startswith("analytics_"):
            op.execute(f"DELETE FROM {table}")


def downgrade() -> None:
    op.create_index(
        op.f("ix_analytics_segments_conversation_key"), "analytics_segments", ["conversation_key"]
    )
    op.create_index(
        op.f("ix_analytics_conversations_started_at"), "analytics_conversations", ["started_at"]
    )
    op.drop_index("ix_analytics_conversations_started_key", table_name="analytics_conversations")
    op.drop_index("ix_analytics_segments_key_queue", table_name="analytics_segments")
    op.drop_index("ix_analytics_observations_metric_at", table_name="analytics_observations")
    op.drop_index("ix_analytics_intervals_level_start", table_name="analytics_intervals")
    op.drop_table("analytics_intervals")
