"""runs: the size of the run's folder on disk, as its worker or `tricklab gc` last measured it

Revision ID: 2026_12_07_run_disk_bytes
Revises: 2026_12_07_organise
Create Date: 2026-12-07 11:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_07_run_disk_bytes"
down_revision: str | None = "2026_12_07_organise"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default) on both backends: no batch copy of runs, whose
    # copy on SQLite would cascade-delete the epoch rows. Null until the next measurement.
    op.add_column("runs", sa.Column("disk_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "disk_bytes")  # in place on SQLite 3.35+ too: a batch copy would cascade-delete
