"""runs: the world size and devices of the latest attempt

Revision ID: 2026_12_01_world_size
Revises: 2026_12_01_workers
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_01_world_size"
down_revision: str | None = "2026_12_01_workers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("world_size", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("devices", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("devices")
        batch.drop_column("world_size")
