"""A sweep's tables: the search, its trials, and the runs each trial queued."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base, enum_type, utcnow


class SweepStatus(enum.StrEnum):
    running = "running"  # the controller asks, queues and tells
    paused = "paused"  # its running trials and runs finish; nothing new is queued until it resumes
    confirming = "confirming"  # the search is spent; the top configurations run over more seeds
    finished = "finished"
    cancelled = "cancelled"


ACTIVE_SWEEP_STATUSES = frozenset({SweepStatus.running, SweepStatus.paused, SweepStatus.confirming})


class TrialState(enum.StrEnum):
    running = "running"  # its runs are queued or training
    complete = "complete"
    pruned = "pruned"
    failed = "failed"


class Sweep(Base):
    """An Optuna search over RunConfig keys, run as ordinary runs by the sweep controller.

    ``spec`` is the validated request (``backend.schemas.sweep_spec.SweepSpec``): the space, the
    objective, the budget, the seeds and the sampler's and pruner's settings, so that a restarted server
    rebuilds the same sampler and continues. ``conclusion`` is the confirmation's verdict once known.
    """

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[SweepStatus] = mapped_column(enum_type(SweepStatus, "sweep_status"), default=SweepStatus.running)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    conclusion: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The wall-clock limit counts running time only: the time of past pauses, and the current one's start.
    paused_at: Mapped[datetime | None]
    paused_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class SweepTrial(Base):
    """One configuration the sampler suggested (or a finished run brought in): its parameters as Optuna
    suggested them, its state and objective (the mean over its search seeds)."""

    __tablename__ = "sweep_trials"
    __table_args__ = (UniqueConstraint("sweep_id", "number"), UniqueConstraint("sweep_id", "optuna_number"))

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]  # 0, 1, ... within the sweep
    # The Optuna trial's number: unique, so that a trial asked before a restart is never queued twice.
    optuna_number: Mapped[int | None]
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[TrialState] = mapped_column(enum_type(TrialState, "trial_state"), default=TrialState.running)
    warm: Mapped[bool] = mapped_column(Boolean, default=False)  # finished runs brought in, not queued
    retry_of: Mapped[int | None]  # the number of the failed trial whose parameters it runs again
    value: Mapped[float | None] = mapped_column(Float)
    reported_epoch: Mapped[int] = mapped_column(default=0)  # the last epoch told to the pruner
    pruned: Mapped[str | None] = mapped_column(Text)  # at which rung, against which figures
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class SweepRun(Base):
    """A run of a trial: one per seed, in the search or in the confirmation stage."""

    __tablename__ = "sweep_runs"

    # A run of one sweep may join another's trial too (warm start): the pair is the key.
    trial_id: Mapped[int] = mapped_column(ForeignKey("sweep_trials.id", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, index=True)
    seed: Mapped[int]
    confirm: Mapped[bool] = mapped_column(Boolean, default=False)
