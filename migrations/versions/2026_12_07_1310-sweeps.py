"""sweeps: Optuna searches over RunConfig keys, their trials and the runs of each trial; runs.pruned

Revision ID: 2026_12_07_sweeps
Revises: 2026_12_07_run_slurm
Create Date: 2026-12-07 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from backend.models import UTCDateTime

revision: str = "2026_12_07_sweeps"
down_revision: str | None = "2026_12_07_run_slurm"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SWEEP_STATUSES = ("running", "paused", "confirming", "finished", "cancelled")
TRIAL_STATES = ("running", "complete", "pruned", "failed")


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    # Not a batch: on SQLite it would copy runs and cascade-delete every epoch row.
    op.add_column("runs", sa.Column("pruned", sa.Text(), nullable=True))
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", _enum(SWEEP_STATUSES, "sweep_status"), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("conclusion", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
    )
    op.create_table(
        "sweep_trials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("optuna_number", sa.Integer(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", _enum(TRIAL_STATES, "trial_state"), nullable=False),
        sa.Column("warm", sa.Boolean(), nullable=False),
        sa.Column("retry_of", sa.Integer(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("reported_epoch", sa.Integer(), nullable=False),
        sa.Column("pruned", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweeps.id"], name=op.f("fk_sweep_trials_sweep_id_sweeps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweep_trials")),
        sa.UniqueConstraint("sweep_id", "number", name=op.f("uq_sweep_trials_sweep_id_number")),
        sa.UniqueConstraint("sweep_id", "optuna_number", name=op.f("uq_sweep_trials_sweep_id_optuna_number")),
    )
    op.create_index(op.f("ix_sweep_trials_sweep_id"), "sweep_trials", ["sweep_id"])
    op.create_table(
        "sweep_runs",
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("confirm", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_sweep_runs_run_id_runs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["sweep_trials.id"], name=op.f("fk_sweep_runs_trial_id_sweep_trials"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("trial_id", "run_id", name=op.f("pk_sweep_runs")),
    )
    op.create_index(op.f("ix_sweep_runs_run_id"), "sweep_runs", ["run_id"])


def downgrade() -> None:
    op.drop_table("sweep_runs")
    op.drop_table("sweep_trials")
    op.drop_table("sweeps")
    op.drop_column("runs", "pruned")
