"""api tokens and browser log-in sessions; the creator of runs and studies

Revision ID: 2026_12_01_api_tokens
Revises: 2026_11_28_initial
Create Date: 2026-12-01 09:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_01_api_tokens"
down_revision: str | None = "2026_11_28_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_tokens_name")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_tokens_secret_hash")),
    )
    op.create_table(
        "login_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["tokens.id"], name=op.f("fk_login_sessions_token_id_tokens"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_sessions")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_login_sessions_secret_hash")),
    )
    op.create_index(op.f("ix_login_sessions_token_id"), "login_sessions", ["token_id"])
    # Plain ADD COLUMN on both backends: SQLite needs no table copy for a nullable column.
    op.add_column("runs", sa.Column("created_by", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_runs_created_by"), "runs", ["created_by"])
    op.add_column("studies", sa.Column("created_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), not a batch copy: copying `runs` would drop the
    # old table, and with foreign keys on that deletes every epoch row through ON DELETE CASCADE.
    op.drop_column("studies", "created_by")
    op.drop_index(op.f("ix_runs_created_by"), table_name="runs")
    op.drop_column("runs", "created_by")
    op.drop_index(op.f("ix_login_sessions_token_id"), table_name="login_sessions")
    op.drop_table("login_sessions")
    op.drop_table("tokens")
