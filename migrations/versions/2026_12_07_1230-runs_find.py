"""runs: the configuration without the seed (to group replicates) and the runs list's sort indexes

The sort indexes are built from ``backend.models.SORT_KEYS``, the expressions the list orders by, so
that the planner matches them.

Revision ID: 2026_12_07_runs_find
Revises: 2026_12_07_run_disk_bytes
Create Date: 2026-12-07 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.models import SORT_KEYS
from backend.reports.compare import configuration_key
from trainer.config import RunConfig

revision: str = "2026_12_07_runs_find"
down_revision: str | None = "2026_12_07_run_disk_bytes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _configuration(config: dict) -> str | None:
    try:
        return configuration_key(RunConfig.model_validate(config))
    except ValueError:  # a config older than today's RunConfig: the run stays a group of its own
        return None


def upgrade() -> None:
    # Not a batch: on SQLite it would copy runs and cascade-delete every epoch row.
    op.add_column("runs", sa.Column("configuration_hash", sa.String(length=64), nullable=True))
    op.create_index("ix_runs_configuration_hash", "runs", ["configuration_hash"])
    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("config", sa.JSON), sa.column("configuration_hash"))
    connection = op.get_bind()
    for run_id, config in connection.execute(sa.select(runs.c.id, runs.c.config)).all():
        connection.execute(
            runs.update().where(runs.c.id == run_id).values(configuration_hash=_configuration(config))
        )
    for name, key in SORT_KEYS.items():
        op.create_index(f"ix_runs_sort_{name}", "runs", [key, "id"])
    op.create_index("ix_runs_created_at_id", "runs", ["created_at", "id"])
    op.create_index("ix_runs_status_id", "runs", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_status_id", "runs")
    op.drop_index("ix_runs_created_at_id", "runs")
    for name in reversed(SORT_KEYS):
        op.drop_index(f"ix_runs_sort_{name}", "runs")
    op.drop_index("ix_runs_configuration_hash", "runs")
    op.drop_column("runs", "configuration_hash")
