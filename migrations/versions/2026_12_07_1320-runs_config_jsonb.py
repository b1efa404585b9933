"""runs: config as jsonb on PostgreSQL, with indexes on the config keys filters read most; archived
runs alone in the archive index; epoch_metrics: an index that holds the runs list's summary

The config indexes are built from ``backend.models.CONFIG_INDEXES``, the filter's own expressions, so
that the planner matches them. SQLite keeps config as JSON text (and builds no config index: its index
expressions cannot hold the filter's bound path).

Revision ID: 2026_12_07_runs_config_jsonb
Revises: 2026_12_07_sweeps
Create Date: 2026-12-07 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.models import CONFIG_INDEXES

revision: str = "2026_12_07_runs_config_jsonb"
down_revision: str | None = "2026_12_07_sweeps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ARCHIVED = sa.text("archived_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_runs_archived_at_id", "runs")
    op.create_index(
        "ix_runs_archived_at_id", "runs", ["archived_at", "id"], sqlite_where=ARCHIVED, postgresql_where=ARCHIVED
    )
    op.create_index(
        "ix_epoch_metrics_run_summary",
        "epoch_metrics",
        ["run_id", "epoch", "seconds", "images_per_s", "data_wait_share"],
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE runs ALTER COLUMN config TYPE jsonb USING config::jsonb")
    for index in CONFIG_INDEXES["postgresql"]:
        index.create(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for index in reversed(CONFIG_INDEXES["postgresql"]):
            op.drop_index(index.name, "runs")
        op.execute("ALTER TABLE runs ALTER COLUMN config TYPE json USING config::json")
    op.drop_index("ix_epoch_metrics_run_summary", "epoch_metrics")
    op.drop_index("ix_runs_archived_at_id", "runs")
    op.create_index("ix_runs_archived_at_id", "runs", ["archived_at", "id"])
