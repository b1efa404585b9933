"""initial schema: runs, epoch and step metrics, studies

Revision ID: 2026_11_28_initial
Revises:
Create Date: 2026-11-28 15:17:40
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2026_11_28_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_STATUS = ("queued", "running", "succeeded", "failed", "cancelled")
FAILURE_KIND = ("training", "infrastructure")


def _status(name: str, values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    # studies and runs refer to each other. SQLite accepts a reference to a table created later,
    # and cannot add one afterwards; PostgreSQL is the other way round.
    sqlite = op.get_bind().dialect.name == "sqlite"
    baseline_fk = sa.ForeignKeyConstraint(
        ["baseline_run_id"], ["runs.id"], name=op.f("fk_studies_baseline_run_id_runs"), ondelete="SET NULL"
    )
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("baseline_run_id", sa.Integer(), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        *([baseline_fk] if sqlite else []),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("status", _status("run_status", RUN_STATUS), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("depends_on", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("training_failures", sa.Integer(), nullable=False),
        sa.Column("infrastructure_failures", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("failure_kind", _status("failure_kind", FAILURE_KIND), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("start_epoch", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("test_loss", sa.Float(), nullable=True),
        sa.Column("test_top1", sa.Float(), nullable=True),
        sa.Column("test_top5", sa.Float(), nullable=True),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("best_valid_loss", sa.Float(), nullable=True),
        sa.Column("best_valid_top1", sa.Float(), nullable=True),
        sa.Column("best_valid_top5", sa.Float(), nullable=True),
        sa.Column("max_valid_top1", sa.Float(), nullable=True),
        sa.Column("max_valid_top5", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["depends_on"], ["runs.id"], name=op.f("fk_runs_depends_on_runs"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name=op.f("fk_runs_study_id_studies"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    if not sqlite:
        op.create_foreign_key(op.f("fk_studies_baseline_run_id_runs"), "studies", "runs",
                              ["baseline_run_id"], ["id"], ondelete="SET NULL")
    op.create_index(op.f("ix_runs_config_hash"), "runs", ["config_hash"])
    op.create_index(op.f("ix_runs_depends_on"), "runs", ["depends_on"])
    op.create_index(op.f("ix_runs_name"), "runs", ["name"])
    op.create_index("ix_runs_status_priority_id", "runs", ["status", "priority", "id"])
    op.create_index(op.f("ix_runs_study_id"), "runs", ["study_id"])

    op.create_table(
        "epoch_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=True) for name in (
            "train_loss", "train_top1", "train_top5", "valid_loss", "valid_top1", "valid_top5",
            "lr", "seconds", "images_per_s", "train_task_loss", "train_kd_loss",
        )),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_epoch_metrics_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epoch_metrics")),
        sa.UniqueConstraint("run_id", "epoch", name=op.f("uq_epoch_metrics_run_id_epoch")),
    )
    op.create_table(
        "step_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("lr", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_step_metrics_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_metrics")),
        sa.UniqueConstraint("run_id", "step", name=op.f("uq_step_metrics_run_id_step")),
    )


def downgrade() -> None:
    op.drop_table("step_metrics")
    op.drop_table("epoch_metrics")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("fk_studies_baseline_run_id_runs"), "studies", type_="foreignkey")
    for index in ("ix_runs_study_id", "ix_runs_status_priority_id", "ix_runs_name", "ix_runs_depends_on",
                  "ix_runs_config_hash"):
        op.drop_index(index, table_name="runs")
    op.drop_table("runs")
    op.drop_table("studies")
