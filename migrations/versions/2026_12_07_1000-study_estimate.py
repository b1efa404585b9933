"""studies: the estimate made when the study was created, shown beside the time it took

Revision ID: 2026_12_07_study_estimate
Revises: 2026_12_01_run_kind
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_07_study_estimate"
down_revision: str | None = "2026_12_01_run_kind"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Null for the studies created before: their estimate was not kept.
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("estimated_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("estimate_basis", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("estimate_basis")
        batch.drop_column("estimated_seconds")
