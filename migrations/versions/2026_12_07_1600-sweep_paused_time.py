"""sweeps: paused_at and paused_seconds, so that a sweep's wall-clock limit counts running time only

Revision ID: 2026_12_07_sweep_paused_time
Revises: 2026_12_07_sqlite_config_ix
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.models import UTCDateTime

revision: str = "2026_12_07_sweep_paused_time"
down_revision: str | None = "2026_12_07_sqlite_config_ix"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on both backends: SQLite needs no table copy for these.
    op.add_column("sweeps", sa.Column("paused_at", UTCDateTime(), nullable=True))
    op.add_column("sweeps", sa.Column("paused_seconds", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    # DROP COLUMN in place (SQLite 3.35 on): a batch copy would drop the table and cascade away its trials.
    op.drop_column("sweeps", "paused_seconds")
    op.drop_column("sweeps", "paused_at")
