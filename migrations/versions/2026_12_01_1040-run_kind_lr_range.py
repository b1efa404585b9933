"""runs: a kind (a training run or an LR range test) and a range test's sweep

Revision ID: 2026_12_01_run_kind
Revises: 2026_12_01_epoch_timing
Create Date: 2026-12-01 12:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_01_run_kind"
down_revision: str | None = "2026_12_01_epoch_timing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_KIND = ("training", "lr_range")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column(
                "kind",
                sa.Enum(*RUN_KIND, name="run_kind", native_enum=False, create_constraint=True, length=16),
                nullable=False,
                server_default="training",  # every run stored before range tests existed trained
            )
        )
        batch.add_column(sa.Column("sweep", sa.JSON(), nullable=True))
        batch.create_index("ix_runs_kind", ["kind"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_kind")
        batch.drop_column("sweep")
        # SQLite's table copy would keep the CHECK on a column it no longer has.
        batch.drop_constraint("run_kind", type_="check")
        batch.drop_column("kind")
