"""runs: the Slurm job that trains a run handed to Slurm (`tricklab worker --slurm`), as the dispatcher
last read it: job id, node list, restarts, state and pending reason

Revision ID: 2026_12_07_run_slurm
Revises: 2026_12_07_runs_find
Create Date: 2026-12-07 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_07_run_slurm"
down_revision: str | None = "2026_12_07_runs_find"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("slurm_job_id", sa.BigInteger()),
    ("slurm_nodes", sa.String(length=200)),
    ("slurm_restarts", sa.Integer()),
    ("slurm_state", sa.String(length=40)),
    ("slurm_reason", sa.String(length=200)),
)


def upgrade() -> None:
    # Plain ADD COLUMNs (nullable, no default): a batch copy of runs on SQLite would cascade-delete epochs.
    for name, kind in COLUMNS:
        op.add_column("runs", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("runs", name)
