"""The job queue, as workers use it: claim, heartbeat, store events, finish.

Every write from a worker names the attempt it holds and is refused (returns None) once the run
has moved on: requeued after a stale heartbeat, cancelled, retried, or deleted. A worker
whose write is refused stops its trainer and leaves the run alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from backend.db import Database
from backend.models import EpochMetric, FailureKind, Run, RunStatus, StepMetric, utcnow
from trainer.protocol import EPOCH_FIELDS, RESULT_FIELDS

# The worker name of a run handed to Slurm: ``slurm:<dispatcher host>``; its job, not a worker, trains it.
SLURM_WORKER_PREFIX = "slurm:"


@dataclass(frozen=True)
class Claim:
    run_id: int
    attempt: int
    config: dict[str, Any]
    sweep: dict[str, Any] | None = None  # an LR range test's sweep; None for a training run


# The queue's statements, built once: an idle worker asks them every poll, and building them (the aliases'
# column adaptation) cost it several times what SQLite takes to answer them.
_CANDIDATE = aliased(Run, name="candidate")  # an alias, so that the query stays uncorrelated inside an UPDATE of runs
_TEACHER = aliased(Run, name="teacher")
# Highest priority, then oldest id, among queued runs whose teacher (if any) succeeded.
_NEXT_RUNNABLE = (
    select(_CANDIDATE.id)
    .where(
        _CANDIDATE.status == RunStatus.queued,
        or_(
            _CANDIDATE.depends_on.is_(None),
            exists().where(_TEACHER.id == _CANDIDATE.depends_on, _TEACHER.status == RunStatus.succeeded),
        ),
    )
    .order_by(_CANDIDATE.priority.desc(), _CANDIDATE.id)
    .limit(1)
)
_NEXT_ID_LOCKED = _NEXT_RUNNABLE.with_for_update(skip_locked=True, of=_CANDIDATE).scalar_subquery()
# Running runs whose worker stopped heartbeating before :cutoff (see requeue_stale).
_STALE = select(Run).where(
    Run.status == RunStatus.running,
    Run.heartbeat_at < bindparam("cutoff"),
    or_(Run.worker.is_(None), Run.worker.not_like(f"{SLURM_WORKER_PREFIX}%")),
)
# Queued runs whose teacher failed or was cancelled: they can never start.
_ORPHANS = (
    select(Run, _TEACHER.id, _TEACHER.name, _TEACHER.status)
    .join(_TEACHER, _TEACHER.id == Run.depends_on)
    .where(Run.status == RunStatus.queued, _TEACHER.status.in_((RunStatus.failed, RunStatus.cancelled)))
)
_HAS_WORK = select(or_(_NEXT_RUNNABLE.exists(), _STALE.exists(), _ORPHANS.exists()))


def claim_run(
    *,
    session: Session,
    worker: str,
    stale_after_seconds: float,
    now: datetime | None = None,
) -> Claim | None:
    """Requeue stale runs, fail runs whose teacher failed, then claim the next runnable run.

    Next = highest priority, then oldest id, among queued runs whose teacher (if any) succeeded.
    One statement claims and marks it: UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)
    RETURNING on PostgreSQL; on SQLite the same UPDATE ... RETURNING inside BEGIN IMMEDIATE.
    """
    session.connection()  # BEGIN (IMMEDIATE on SQLite) first: the time below is taken holding the lock
    now = now or utcnow()
    requeue_stale(session=session, stale_after_seconds=stale_after_seconds, now=now)
    fail_orphans(session=session, now=now)

    row = session.execute(
        update(Run)
        .where(Run.id == _NEXT_ID_LOCKED, Run.status == RunStatus.queued)
        .values(
            status=RunStatus.running,
            attempt=Run.attempt + 1,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            start_epoch=0,
            world_size=None,  # until the new attempt's trainer says what it trains on
            devices=None,
            # An earlier attempt's Slurm job is not this attempt's (the dispatcher sets its own after sbatch).
            slurm_job_id=None,
            slurm_nodes=None,
            slurm_restarts=None,
            slurm_state=None,
            slurm_reason=None,
        )
        .returning(Run.id, Run.attempt, Run.config, Run.sweep)
    ).one_or_none()
    session.commit()
    return Claim(run_id=row.id, attempt=row.attempt, config=row.config, sweep=row.sweep) if row else None


def has_work(*, session: Session, stale_after_seconds: float, now: datetime | None = None) -> bool:
    """Whether ``claim_run`` would change anything now: a run to claim, a stale run to requeue or an orphan
    to fail. Read-only, so that idle workers poll without taking the write lock (SQLite's is the database's)."""
    cutoff = (now or utcnow()) - timedelta(seconds=stale_after_seconds)
    found = bool(session.scalar(_HAS_WORK, {"cutoff": cutoff}))
    session.rollback()
    return found


def claim_if_any(*, database: Database, worker: str, stale_after_seconds: float) -> Claim | None:
    """``claim_run`` in a write transaction, taken only when ``has_work`` finds something to do."""
    with database.session() as session:
        if not has_work(session=session, stale_after_seconds=stale_after_seconds):
            return None
    with database.session(write=True) as session:
        return claim_run(session=session, worker=worker, stale_after_seconds=stale_after_seconds)


def next_claim_config(*, session: Session) -> tuple[int, dict[str, Any]] | None:
    """The run ``claim_run`` would claim now and its config, read without claiming it: a worker checks
    that it has room for the run first."""
    run_id = session.scalar(_NEXT_RUNNABLE)
    if run_id is None:
        return None
    config = session.scalar(select(Run.config).where(Run.id == run_id))
    return (run_id, config) if config is not None else None


def requeue_stale(*, session: Session, stale_after_seconds: float, now: datetime) -> list[int]:
    """Runs whose worker stopped heartbeating go back to the queue (an infrastructure failure). Runs handed
    to Slurm are not: a job pending in Slurm sends no heartbeat, and the dispatcher watches its jobs."""
    cutoff = now - timedelta(seconds=stale_after_seconds)
    stale = session.scalars(_STALE.with_for_update(skip_locked=True), {"cutoff": cutoff}).all()
    for run in stale:
        run.failure_kind = FailureKind.infrastructure
        run.infrastructure_failures += 1
        run.error = (
            f"attempt {run.attempt}: worker {run.worker} stopped responding "
            f"(last heartbeat {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)"
        )
        run.worker = None
        if run.cancel_requested:
            run.status = RunStatus.cancelled
            run.finished_at = now
        else:
            run.status = RunStatus.queued
    return [run.id for run in stale]


def fail_orphans(*, session: Session, now: datetime) -> list[int]:
    """Queued runs whose teacher failed or was cancelled can never start: fail them, naming it."""
    rows = session.execute(_ORPHANS.with_for_update(skip_locked=True, of=Run)).all()
    for run, teacher_id, teacher_name, teacher_status in rows:
        run.status = RunStatus.failed
        run.failure_kind = None
        run.error = f"teacher run {teacher_id} ({teacher_name}) {teacher_status.value}; retry it, then this run"
        run.finished_at = now
    return [run.id for run, *_ in rows]


# --- while running ----------------------------------------------------------------------------


def _owned(session: Session, run_id: int, attempt: int, *, write: bool) -> Run | None:
    """The run if this attempt still holds it; locks the row (shared for metric writes)."""
    return session.scalars(
        select(Run)
        .where(Run.id == run_id, Run.attempt == attempt, Run.status == RunStatus.running)
        .with_for_update(read=not write)
    ).one_or_none()


def heartbeat(*, session: Session, run_id: int, attempt: int, now: datetime | None = None) -> bool | None:
    """Mark the run alive. Returns whether a cancel was requested, or None if the run was lost."""
    session.connection()  # the time is taken once the write lock is held, not before waiting for it
    row = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.attempt == attempt, Run.status == RunStatus.running)
        .values(heartbeat_at=now or utcnow())
        .returning(Run.cancel_requested)
    ).one_or_none()
    session.commit()
    return None if row is None else row.cancel_requested


def cancel_requested(*, session: Session, run_id: int, attempt: int) -> bool | None:
    """Read-only twin of heartbeat, polled more often: True / False, or None if the run was lost."""
    row = session.execute(
        select(Run.cancel_requested).where(Run.id == run_id, Run.attempt == attempt, Run.status == RunStatus.running)
    ).one_or_none()
    session.rollback()
    return None if row is None else row.cancel_requested


def record_start(
    *,
    session: Session,
    run_id: int,
    attempt: int,
    start_epoch: int,
    start_step: Any = None,
    world_size: Any = None,
    devices: Any = None,
    fallback: Any = None,
    software: Any = None,
) -> bool | None:
    """The trainer resumes after ``start_epoch``: rows past it belong to a crashed attempt. ``start_step``:
    the steps done before it, when it resumes from a mid-epoch checkpoint.

    ``world_size`` and ``devices`` (from the start event, unchecked) say what the attempt trains on,
    ``fallback`` why it trains on the CPU although its config let it take a GPU, ``software`` the
    tricklab and torch versions that train it.
    """
    run = _owned(session, run_id, attempt, write=True)
    if run is None:
        session.rollback()
        return None
    run.start_epoch = start_epoch
    step = _number(start_step)
    run.start_step = step if isinstance(step, int) and step > 0 else None
    count = _number(world_size)
    run.world_size = count if isinstance(count, int) and count >= 1 else None
    run.devices = devices[:200] if isinstance(devices, str) and devices else None
    run.device_fallback = fallback[:2000] if isinstance(fallback, str) and fallback else None
    run.software = software[:200] if isinstance(software, str) and software else None
    session.execute(delete(EpochMetric).where(EpochMetric.run_id == run_id, EpochMetric.epoch > start_epoch))
    session.execute(delete(StepMetric).where(StepMetric.run_id == run_id, StepMetric.epoch > start_epoch))
    session.commit()
    return True


def _upsert(session: Session, model: type, rows: list[dict[str, Any]], keys: tuple[str, ...], *, replace: bool):
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(model).values(rows)
    if replace:
        columns = {name: statement.excluded[name] for name in rows[0] if name not in keys}
        statement = statement.on_conflict_do_update(index_elements=list(keys), set_=columns)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    session.execute(statement)


def _number(value: Any) -> float | int | None:
    """A finite number from a trainer event, else None: a bad value must not fail the write."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value


def store_epoch(
    *,
    session: Session,
    run_id: int,
    attempt: int,
    row: Mapping[str, Any],
    replay: bool = False,
) -> bool | None:
    """Upsert one epoch row, fenced by the attempt.

    ``replay``: the trainer reports the epochs its checkpoint holds again when it resumes; those are
    inserted only where missing (a worker died before storing them), never rewritten.
    """
    if _owned(session, run_id, attempt, write=False) is None:
        session.rollback()
        return None
    values: dict[str, Any] = {name: _number(row.get(name)) for name in EPOCH_FIELDS}
    values.update(run_id=run_id, epoch=int(row["epoch"]), attempt=attempt, created_at=utcnow())
    _upsert(session, EpochMetric, [values], ("run_id", "epoch"), replace=not replay)
    session.commit()
    return True


def store_steps(*, session: Session, run_id: int, attempt: int, steps: Iterable[Mapping[str, Any]]) -> bool | None:
    rows = [
        {
            "run_id": run_id,
            "step": int(s["step"]),
            "epoch": int(s["epoch"]),
            "loss": _number(s.get("loss")),
            "lr": _number(s.get("lr")),
        }
        for s in steps
    ]
    if _owned(session, run_id, attempt, write=False) is None:
        session.rollback()
        return None
    if rows:
        # One row per step: the last report of a step wins within the batch as across batches.
        _upsert(
            session, StepMetric, list({row["step"]: row for row in rows}.values()), ("run_id", "step"), replace=True
        )
    session.commit()
    return True


# --- the end of an attempt --------------------------------------------------------------------


def succeed(*, session: Session, run_id: int, attempt: int, result: Mapping[str, Any]) -> bool | None:
    run = _owned(session, run_id, attempt, write=True)
    if run is None:
        session.rollback()
        return None
    for name in RESULT_FIELDS:
        setattr(run, name, _number(result.get(name)))
    run.status = RunStatus.succeeded
    run.finished_at = utcnow()
    session.commit()
    return True


def mark_cancelled(*, session: Session, run_id: int, attempt: int) -> bool | None:
    run = _owned(session, run_id, attempt, write=True)
    if run is None:
        session.rollback()
        return None
    run.status = RunStatus.cancelled
    run.finished_at = utcnow()
    session.commit()
    return True


def fail(*, session: Session, run_id: int, attempt: int, error: str, kind: FailureKind) -> RunStatus | None:
    """Record a failed attempt. Training failures are requeued while tries remain (max_attempts);
    infrastructure failures (the worker was stopped) always are. Returns the new status."""
    run = _owned(session, run_id, attempt, write=True)
    if run is None:
        session.rollback()
        return None
    run.failure_kind = kind
    run.error = error
    run.worker = None
    if kind == FailureKind.training:
        run.training_failures += 1
        retry = run.training_failures < run.max_attempts and not run.cancel_requested
    else:
        run.infrastructure_failures += 1
        retry = not run.cancel_requested
    if retry:
        run.status = RunStatus.queued
    else:
        run.status = RunStatus.cancelled if run.cancel_requested else RunStatus.failed
        run.finished_at = utcnow()
    session.commit()
    return run.status


def record_disk_size(*, session: Session, run_id: int, attempt: int, disk_bytes: int) -> bool | None:
    """Store the size of the run's folder, measured by the worker of ``attempt``: fenced as every write of it."""
    run = _owned(session, run_id, attempt, write=True)
    if run is None:
        session.rollback()
        return None
    run.disk_bytes = disk_bytes
    session.commit()
    return True
