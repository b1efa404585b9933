"""epoch_metrics: the trainer's peak resident memory, quoted when the system kills it

Revision ID: 2026_12_07_epoch_peak_rss
Revises: 2026_12_07_checkpoint_peak
Create Date: 2026-12-07 10:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_07_epoch_peak_rss"
down_revision: str | None = "2026_12_07_checkpoint_peak"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("epoch_metrics") as batch:
        batch.add_column(sa.Column("peak_rss_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("epoch_metrics") as batch:
        batch.drop_column("peak_rss_bytes")
