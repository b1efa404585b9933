"""epoch_metrics: where each epoch's time went, and the index that finds a run's best epoch

Revision ID: 2026_12_01_epoch_timing
Revises: 2026_12_01_device_fallback
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_01_epoch_timing"
down_revision: str | None = "2026_12_01_device_fallback"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("epoch_metrics") as batch:
        batch.add_column(sa.Column("data_wait_share", sa.Float(), nullable=True))
        batch.add_column(sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("gpu_utilization", sa.Float(), nullable=True))
    op.create_index(
        op.f("ix_epoch_metrics_run_id_valid_top1_epoch"), "epoch_metrics", ["run_id", "valid_top1", "epoch"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_epoch_metrics_run_id_valid_top1_epoch"), table_name="epoch_metrics")
    with op.batch_alter_table("epoch_metrics") as batch:
        batch.drop_column("gpu_utilization")
        batch.drop_column("peak_memory_bytes")
        batch.drop_column("data_wait_share")
