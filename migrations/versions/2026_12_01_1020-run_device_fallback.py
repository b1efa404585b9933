"""runs: why the latest attempt trains on the CPU under runtime.device auto

Revision ID: 2026_12_01_device_fallback
Revises: 2026_12_01_idempotency_keys
Create Date: 2026-12-01 12:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_01_device_fallback"
down_revision: str | None = "2026_12_01_idempotency_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("device_fallback", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("device_fallback")
