"""runs: the tricklab and torch versions that trained the run, for a report's provenance

Revision ID: 2026_12_07_run_software
Revises: 2026_12_07_worker_paused
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_07_run_software"
down_revision: str | None = "2026_12_07_worker_paused"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Not batches: on SQLite a batch drop copies runs, and dropping the old table deletes every epoch row
# through its ON DELETE CASCADE. SQLite 3.35+ and PostgreSQL add and drop a column in place.
def upgrade() -> None:
    op.add_column("runs", sa.Column("software", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("runs", "software")
