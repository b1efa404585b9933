"""Database tables (SQLAlchemy 2.0 typed models). Alembic revisions in migrations/ mirror these."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    case,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


MAX_ID = 2**31 - 1  # ids are INTEGER columns: a larger one names no row (and PostgreSQL would refuse it)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so it is stored naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # VARCHAR + CHECK rather than a native PostgreSQL type: one schema on both backends.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


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
        _enum(RunKind, "run_kind"), default=RunKind.training, server_default=RunKind.training.value, index=True
    )
    # An LR range test's sweep (trainer.lr_finder.sweep.LRSweep, whole); None for a training run.
    sweep: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="SET NULL"), index=True)
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"), default=RunStatus.queued)
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
    failure_kind: Mapped[FailureKind | None] = mapped_column(_enum(FailureKind, "failure_kind"))
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


class Token(Base):
    """An API token: the name runs and studies record as their creator, and the SHA-256 of its secret.

    A revoked token keeps its row (``token list`` shows it) until its name is given a new token.
    """

    __tablename__ = "tokens"
    __table_args__ = (UniqueConstraint("name"), UniqueConstraint("secret_hash"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class LoginSession(Base):
    """A browser's log-in: its cookie holds a random secret, stored here as a SHA-256, tied to a token."""

    __tablename__ = "login_sessions"
    __table_args__ = (UniqueConstraint("secret_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class Worker(Base):
    """A worker process as it last reported itself: its devices, and when it was last seen alive."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    devices: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(index=True)
    paused: Mapped[str | None] = mapped_column(Text)  # why it claims nothing now (a full runs folder)


class IdempotencyKey(Base):
    """A create request's Idempotency-Key and what it created: a retry with the key gets that back."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(32))  # what the key creates: "runs" or "studies"
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))  # the request it came with: another one is refused
    resource_id: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


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
    status: Mapped[SweepStatus] = mapped_column(_enum(SweepStatus, "sweep_status"), default=SweepStatus.running)
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
    state: Mapped[TrialState] = mapped_column(_enum(TrialState, "trial_state"), default=TrialState.running)
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


# The config keys a study's ablations filter on most, and the JSON type their values hold. Each one's
# filter expression is indexed (CONFIG_INDEXES): a filter on them reads the index, and its statistics
# tell the planner how many runs match, so that it pages down the sort index rather than sorting
# every match where most do (SQLite's made by backend.statistics).
INDEXED_CONFIG_KEYS: dict[tuple[str, ...], str] = {
    ("seed",): "number",
    ("model", "arch"): "string",
    ("optim", "name"): "string",
    ("optim", "lr"): "number",
    ("schedule", "name"): "string",
    ("tricks", "label_smoothing"): "number",
    ("tricks", "mixup_alpha"): "number",
}


class ConfigKey:
    """One key of a run's stored config (``keys``, its path) on ``dialect``, each read guarded by the
    value's JSON type: the runs filter's reads (backend.services.filter_sql) and the expressions of
    CONFIG_INDEXES, one and the same, so that the planner matches them.

    The path is bound, except on SQLite for a key of INDEXED_CONFIG_KEYS (a fixed list, never the
    user's text): SQLite's index expressions cannot hold a parameter and its planner matches a query's
    expression to an index's only where both hold the same literals, so there the path and the type
    names are written into the SQL."""

    def __init__(self, keys: tuple[str, ...], dialect: str):
        self.keys = keys
        self.sqlite = dialect == "sqlite"
        self.literal = self.sqlite and keys in INDEXED_CONFIG_KEYS

    def _path(self) -> Any:
        if self.literal:
            # Letters, digits and _ only (INDEXED_CONFIG_KEYS): nothing to quote.
            return literal_column("'$." + ".".join(self.keys) + "'", type_=String)
        return bindparam(None, self.keys, type_=JSON.JSONPathType())

    def _type(self) -> ColumnElement[str]:
        if self.sqlite:
            return func.json_type(Run.config, self._path(), type_=String)
        return func.jsonb_typeof(Run.config[self.keys], type_=String)

    def is_kind(self, kind: str) -> ColumnElement[bool]:
        sqlite_names = {"number": ("integer", "real"), "string": ("text",), "boolean": ("true", "false")}
        if self.sqlite:
            names = sqlite_names.get(kind, (kind,))
            if self.literal:
                return self._type().in_([literal_column(f"'{name}'", type_=String) for name in names])
            return self._type().in_(names)
        return self._type() == kind

    def exists(self) -> ColumnElement[bool]:
        return self._type().is_not(None)

    def value(self, kind: str) -> ColumnElement[Any]:
        """The value as ``kind`` where it is one, else NULL: CASE keeps the cast from any other value."""
        if kind == "boolean":
            raw = self._type() if self.sqlite else Run.config[self.keys].as_string()
        elif kind == "number":
            raw = (
                func.json_extract(Run.config, self._path(), type_=Float)
                if self.sqlite
                else Run.config[self.keys].as_float()
            )
        else:
            raw = (
                func.json_extract(Run.config, self._path(), type_=String)
                if self.sqlite
                else Run.config[self.keys].as_string()
            )
        return case((self.is_kind(kind), raw), else_=None)


# Per dialect, each written in that dialect's own expression (the same names on both).
CONFIG_INDEXES = {
    dialect: [
        # In parentheses: PostgreSQL indexes an expression other than a function call only so written.
        Index(f"ix_runs_config_{'_'.join(keys)}", Grouping(ConfigKey(keys, dialect).value(kind))).ddl_if(
            dialect=dialect
        )
        for keys, kind in INDEXED_CONFIG_KEYS.items()
    ]
    for dialect in ("postgresql", "sqlite")
}
