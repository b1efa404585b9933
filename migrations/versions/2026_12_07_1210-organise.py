"""runs: notes, tags (run_tags), archived_at, updated_by/updated_at; studies: updated_by/updated_at

Revision ID: 2026_12_07_organise
Revises: 2026_12_07_run_software
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "2026_12_07_organise"
down_revision: str | None = "2026_12_07_run_software"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch: on SQLite a batch copies runs, and dropping the old table
    # deletes every epoch row through its ON DELETE CASCADE.
    op.add_column("runs", sa.Column("notes", sa.Text(), server_default="", nullable=False))
    op.add_column("runs", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("runs", sa.Column("updated_by", sa.String(length=64), nullable=True))
    op.add_column("runs", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_runs_archived_at_id", "runs", ["archived_at", "id"])
    op.add_column("studies", sa.Column("updated_by", sa.String(length=64), nullable=True))
    op.add_column("studies", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_tags_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "tag", name="pk_run_tags"),
    )
    op.create_index("ix_run_tags_tag_run_id", "run_tags", ["tag", "run_id"])


def downgrade() -> None:
    op.drop_index("ix_run_tags_tag_run_id", table_name="run_tags")
    op.drop_table("run_tags")
    op.drop_column("studies", "updated_at")
    op.drop_column("studies", "updated_by")
    op.drop_index("ix_runs_archived_at_id", table_name="runs")
    # SQLite 3.35+ drops a column in place, without copying the table.
    for column in ("updated_at", "updated_by", "archived_at", "notes"):
        op.drop_column("runs", column)
