"""thread agents: who took part in which thread

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "thread_agents",
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_thread_agents_thread_id_threads")
        ),
        sa.PrimaryKeyConstraint("thread_id", "agent_id", name=op.f("pk_thread_agents")),
    )
    op.create_index("ix_thread_agents_agent", "thread_agents", ["agent_id"])
    # Existing history: each conversation's last agent, and the agent holding it
    # now (an alerting offer gives no access to the thread's history).
    op.execute(
        "INSERT INTO thread_agents (thread_id, agent_id) "
        "SELECT DISTINCT thread_id, last_agent FROM conversations WHERE last_agent IS NOT NULL "
        "UNION SELECT DISTINCT thread_id, agent_id FROM conversations "
        "WHERE agent_id IS NOT NULL AND state IN ('connected', 'parked', 'wrapup')"
    )


def downgrade() -> None:
    op.drop_index("ix_thread_agents_agent", table_name="thread_agents")
    op.drop_table("thread_agents")
