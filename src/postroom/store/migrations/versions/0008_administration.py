"""administration: configuration version, audit log, catalogs, token role and expiry,
rule enabling, canned-response folders

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "config_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("seeded_from", sa.String(length=40), nullable=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_state")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("via", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("target_type", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=320), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    for column in ("at", "actor", "action", "target_type"):
        op.create_index(op.f(f"ix_audit_log_{column}"), "audit_log", [column])
    op.create_table(
        "skills",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_skills")),
    )
    op.create_table(
        "languages",
        sa.Column("code", sa.String(length=35), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False, server_default=""),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_languages")),
    )
    op.create_table(
        "wrapup_codes",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_wrapup_codes")),
    )
    with op.batch_alter_table("rules") as batch:
        batch.add_column(
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("role", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("expires_at", UTC, nullable=True))
    with op.batch_alter_table("canned_responses") as batch:
        batch.add_column(
            sa.Column("folder", sa.String(length=200), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("updated_at", UTC, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("canned_responses") as batch:
        batch.drop_column("updated_at")
        batch.drop_column("folder")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("role")
    with op.batch_alter_table("rules") as batch:
        batch.drop_column("enabled")
    op.drop_table("wrapup_codes")
    op.drop_table("languages")
    op.drop_table("skills")
    for column in ("target_type", "action", "actor", "at"):
        op.drop_index(op.f(f"ix_audit_log_{column}"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("config_state")
