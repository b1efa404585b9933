"""workers: why a worker claims nothing now (a full runs folder)

Revision ID: 2026_12_07_worker_paused
Revises: 2026_12_07_epoch_peak_rss
Create Date: 2026-12-07 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_07_worker_paused"
down_revision: str | None = "2026_12_07_epoch_peak_rss"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("paused", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("paused")
