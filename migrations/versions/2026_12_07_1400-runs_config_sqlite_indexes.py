"""runs: SQLite's config indexes, the same keys PostgreSQL indexes, each built from the filter's own
expression (``backend.models.CONFIG_INDEXES``), its JSON path written in as a literal (as the filter
writes it for these keys) so that SQLite's planner matches them; then the statistics that tell the
planner how many runs each value holds (backend.statistics).

Revision ID: 2026_12_07_sqlite_config_ix
Revises: 2026_12_07_runs_config_jsonb
Create Date: 2026-12-07 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from backend.models import CONFIG_INDEXES

revision: str = "2026_12_07_sqlite_config_ix"
down_revision: str | None = "2026_12_07_runs_config_jsonb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for index in CONFIG_INDEXES["sqlite"]:
        index.create(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for index in reversed(CONFIG_INDEXES["sqlite"]):
        op.drop_index(index.name, "runs")
