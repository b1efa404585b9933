"""The runs and what they record: studies, runs, their tags and metrics, the runs list's sort keys, and
the workers that train them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base, enum_type, utcnow


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINAL_STATUSES = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled})


class RunKind(enum.StrEnum):
    training = "training"
    lr_range = "lr_range"  # an LR range test: its steps are the curve, it keeps no checkpoint


class FailureKind(enum.StrEnum):
    training = "training"  # the trainer failed: retried up to max_attempts
    infrastructure = "infrastructure"  # the worker died or was stopped: always requeued


class Study(Base):
    """A named group of runs (a preset or a grid) with the baseline its deltas are measured against."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    baseline_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL", use_alter=True))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(String(64))  # the token's name; None on an open server
    # The estimate made when the study was created, shown beside the time it took (the basis says
    # which runs it left out); None where it timed none, or the study predates estimates being kept.
    estimated_seconds: Mapped[float | None] = mapped_column(Float)
    estimate_basis: Mapped[str | None] = mapped_column(Text)
    # The latest rename: who (the token's name; None on an open server) and when; None until one.
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime | None]


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        # The claim query: queued runs by priority, then id.
        Index("ix_runs_status_priority_id", "status", "priority", "id"),
        # The default list leaves archived runs out.
        # Archived runs only: the default list's "archived_at IS NULL" (nearly every run) finds no index
        # here, so the planner pages down the sort's index rather than sorting every run it found.
        Index(
            "ix_runs_archived_at_id",
            "archived_at",
            "id",
            sqlite_where=text("archived_at IS NOT NULL"),
            postgresql_where=text("archived_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[RunKind] = mapped_column(
        enum_type(RunKind, "run_kind"), default=RunKind.training, server_default=RunKind.training.value, index=True
    )
    # An LR range test's sweep (trainer.lr_finder.sweep.LRSweep, whole); None for a training run.
    sweep: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="SET NULL"), index=True)
    status: Mapped[RunStatus] = mapped_column(enum_type(RunStatus, "run_status"), default=RunStatus.queued)
    priority: Mapped[int] = mapped_column(default=0)
    # jsonb on PostgreSQL: a filter's key reads walk the parsed value (json parses the text at each
    # read), and expression indexes can be built on them (CONFIG_INDEXES).
    config: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    config_hash: Mapped[str] = mapped_column(String(64), index=True)
    # The fingerprint without the seed (backend.reports.compare.configuration_key): equal for the
    # seeds of one configuration, which the runs list groups into one row. None on rows made by hand.
    configuration_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    depends_on: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    # The name of the token that queued the run (kept when the token is revoked); None on an open server.
    created_by: Mapped[str | None] = mapped_column(String(64), index=True)

    attempt: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=1)
    training_failures: Mapped[int] = mapped_column(default=0)
    infrastructure_failures: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    failure_kind: Mapped[FailureKind | None] = mapped_column(enum_type(FailureKind, "failure_kind"))
    error: Mapped[str | None] = mapped_column(Text)
    # Why a sweep's controller stopped it early (its rung and the figures it was judged against); it ends cancelled.
    pruned: Mapped[str | None] = mapped_column(Text)
    start_epoch: Mapped[int] = mapped_column(default=0)
    # The global step the latest attempt resumed at, from a mid-epoch checkpoint; None from an epoch's end.
    start_step: Mapped[int | None] = mapped_column(Integer)
    # What the latest attempt trains on, from the trainer's start event: processes, "4 × H200".
    world_size: Mapped[int | None] = mapped_column(Integer)
    devices: Mapped[str | None] = mapped_column(String(200))
    # Why that attempt trains on the CPU under runtime.device auto (CUDA could not be used), in the trainer's words.
    device_fallback: Mapped[str | None] = mapped_column(Text)
    # The tricklab and torch versions that trained it ("tricklab 0.1.0, torch 2.5.1"), from the start event.
    software: Mapped[str | None] = mapped_column(String(200))

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]

    # The trainer's result (trainer.protocol.Result): the test figures of the kept checkpoint (the
    # lowest valid loss), that checkpoint's epoch, and the peak epoch (the highest valid top-1: the
    # figure the report's table quotes).
    test_loss: Mapped[float | None] = mapped_column(Float)
    test_top1: Mapped[float | None] = mapped_column(Float)
    test_top5: Mapped[float | None] = mapped_column(Float)
    checkpoint_epoch: Mapped[int | None] = mapped_column(Integer)
    checkpoint_valid_loss: Mapped[float | None] = mapped_column(Float)
    checkpoint_valid_top1: Mapped[float | None] = mapped_column(Float)
    checkpoint_valid_top5: Mapped[float | None] = mapped_column(Float)
    peak_epoch: Mapped[int | None] = mapped_column(Integer)
    peak_valid_top1: Mapped[float | None] = mapped_column(Float)
    peak_valid_top5: Mapped[float | None] = mapped_column(Float)
    # Bytes of the run's folder, measured by its worker at each epoch and at the end of each attempt, and by
    # `tricklab gc` after it removes checkpoints: the runs list reads it without walking any folder.
    disk_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # A run handed to Slurm (`tricklab worker --slurm`): its job, where it runs, how often Slurm requeued
    # it, and the state and pending reason squeue last gave. The dispatcher, not a heartbeat, watches it.
    slurm_job_id: Mapped[int | None] = mapped_column(BigInteger)
    slurm_nodes: Mapped[str | None] = mapped_column(String(200))
    slurm_restarts: Mapped[int | None] = mapped_column(Integer)
    slurm_state: Mapped[str | None] = mapped_column(String(40))
    slurm_reason: Mapped[str | None] = mapped_column(String(200))

    # What a user says of the run (Markdown), when it was archived (hidden from the default list), and
    # the latest such change: who (the token's name; None on an open server) and when. Tags: RunTag.
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    archived_at: Mapped[datetime | None]
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime | None]


class RunTag(Base):
    """One tag of one run; a run has several. Indexed by tag first: filters ask which runs carry one."""

    __tablename__ = "run_tags"
    __table_args__ = (Index("ix_run_tags_tag_run_id", "tag", "run_id"),)

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(32), primary_key=True)


# The runs list's sort keys (backend.services.run_listing): a figure missing until the run finishes
# sorts as the lowest (every figure is >= 0). The queries order by these same expressions, so the
# planner reads the page from the index they build.
SORT_KEYS: dict[str, Any] = {
    "peak_valid_top1": func.coalesce(Run.peak_valid_top1, literal_column("-1")),
    "peak_valid_top5": func.coalesce(Run.peak_valid_top5, literal_column("-1")),
    "test_top1": func.coalesce(Run.test_top1, literal_column("-1")),
    "test_top5": func.coalesce(Run.test_top5, literal_column("-1")),
    "checkpoint_valid_loss": func.coalesce(Run.checkpoint_valid_loss, literal_column("-1")),
}
for _name, _key in SORT_KEYS.items():
    Index(f"ix_runs_sort_{_name}", _key, Run.id)
Index("ix_runs_created_at_id", Run.created_at, Run.id)
Index("ix_runs_status_id", Run.status, Run.id)


class EpochMetric(Base):
    __tablename__ = "epoch_metrics"
    __table_args__ = (
        UniqueConstraint("run_id", "epoch"),
        # A run's peak epoch (highest valid top-1, earliest on a tie) read from the index alone.
        Index("ix_epoch_metrics_run_id_valid_top1_epoch", "run_id", "valid_top1", "epoch"),
        # The runs list's summary of each run's epochs (backend.services.runs.epoch_summaries: the
        # latest epoch, the mean timings) from the index alone, not one table lookup per epoch row.
        Index("ix_epoch_metrics_run_summary", "run_id", "epoch", "seconds", "images_per_s", "data_wait_share"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int]
    attempt: Mapped[int]  # which attempt wrote the row: shows a resume from a restart
    train_loss: Mapped[float | None] = mapped_column(Float)
    train_top1: Mapped[float | None] = mapped_column(Float)
    train_top5: Mapped[float | None] = mapped_column(Float)
    valid_loss: Mapped[float | None] = mapped_column(Float)
    valid_top1: Mapped[float | None] = mapped_column(Float)
    valid_top5: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)
    images_per_s: Mapped[float | None] = mapped_column(Float)
    train_task_loss: Mapped[float | None] = mapped_column(Float)  # distillation's parts, when it is on
    train_kd_loss: Mapped[float | None] = mapped_column(Float)
    data_wait_share: Mapped[float | None] = mapped_column(Float)  # where the time went (trainer.loop.telemetry)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    gpu_utilization: Mapped[float | None] = mapped_column(Float)
    peak_rss_bytes: Mapped[int | None] = mapped_column(BigInteger)  # the trainer's peak resident memory so far
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StepMetric(Base):
    __tablename__ = "step_metrics"
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int]
    epoch: Mapped[int]
    loss: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)


class Worker(Base):
    """A worker process as it last reported itself: its devices, and when it was last seen alive."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    devices: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(index=True)
    paused: Mapped[str | None] = mapped_column(Text)  # why it claims nothing now (a full runs folder)
