"""threading: awaited references; conversations: preferred agents and route deadline

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "awaited_references",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referenced_id", sa.String(length=500), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name=op.f("fk_awaited_references_thread_id_threads")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_awaited_references_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_awaited_references")),
    )
    op.create_index(
        op.f("ix_awaited_references_referenced_id"), "awaited_references", ["referenced_id"]
    )
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("preferred_agents", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("preferred_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("deadline_at")
        batch.drop_column("preferred_until")
        batch.drop_column("preferred_agents")
    op.drop_index(op.f("ix_awaited_references_referenced_id"), table_name="awaited_references")
    op.drop_table("awaited_references")
