"""runs: the step the latest attempt resumed at, from a mid-epoch checkpoint (the warning signal's)

Revision ID: 2026_12_07_run_start_step
Revises: 2026_12_07_sweep_paused_time
Create Date: 2026-12-07 16:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_07_run_start_step"
down_revision: str | None = "2026_12_07_sweep_paused_time"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default): a batch copy of runs on SQLite would cascade-delete epochs.
    op.add_column("runs", sa.Column("start_step", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "start_step")
