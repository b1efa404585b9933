"""runs: one word per figure, checkpoint_* (the kept checkpoint, lowest valid loss) and peak_* (the
highest valid top-1, the report's figure), for best_* and max_valid_*

max_valid_top5 was the highest top-5 of any epoch, which no page showed; peak_valid_top5 is the top-5
of the peak epoch, so it and the new peak_epoch are read from each run's epoch rows.

Revision ID: 2026_12_07_checkpoint_peak
Revises: 2026_12_07_study_estimate
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_12_07_checkpoint_peak"
down_revision: str | None = "2026_12_07_study_estimate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMED = {
    "best_epoch": "checkpoint_epoch",
    "best_valid_loss": "checkpoint_valid_loss",
    "best_valid_top1": "checkpoint_valid_top1",
    "best_valid_top5": "checkpoint_valid_top5",
    "max_valid_top1": "peak_valid_top1",
    "max_valid_top5": "peak_valid_top5",
}
# The peak epoch as the API picks it (backend.services.metrics.picked_epochs): highest top-1, earliest on a tie.
PEAK = (
    "SELECT e.{column} FROM epoch_metrics e WHERE e.run_id = runs.id AND e.valid_top1 IS NOT NULL "
    "ORDER BY e.valid_top1 DESC, e.epoch LIMIT 1"
)


def _rename(names: dict[str, str]) -> None:
    # Not a batch: on SQLite it would copy the table, and dropping the old runs table deletes every
    # epoch row through its ON DELETE CASCADE. SQLite (3.25+) and PostgreSQL both rename in place.
    for old, new in names.items():
        op.execute(f"ALTER TABLE runs RENAME COLUMN {old} TO {new}")


def upgrade() -> None:
    _rename(RENAMED)
    op.add_column("runs", sa.Column("peak_epoch", sa.Integer(), nullable=True))
    # Only runs with a result: a run still training has no peak of its own yet (the API reads its epochs).
    op.execute(
        f"UPDATE runs SET peak_epoch = ({PEAK.format(column='epoch')}), "
        f"peak_valid_top5 = ({PEAK.format(column='valid_top5')}) WHERE peak_valid_top1 IS NOT NULL"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE runs SET peak_valid_top5 = (SELECT MAX(e.valid_top5) FROM epoch_metrics e WHERE e.run_id = runs.id) "
        "WHERE peak_valid_top1 IS NOT NULL"
    )
    op.drop_column("runs", "peak_epoch")  # SQLite 3.35+ drops a column in place too
    _rename({new: old for old, new in RENAMED.items()})
