"""runs: the tricklab and torch versions that trained the run, for a report's provenance

Revision ID: 2026_12_07_run_software
Revises: 2026_12_07_checkpoint_peak
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_07_run_software"
down_revision: str | None = "2026_12_07_checkpoint_peak"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (batch mode adds it in place on SQLite): no copy of runs, so no cascade to its epochs.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("software", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("software")
