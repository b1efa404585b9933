"""Runs handed to Slurm, as the dispatcher (``tricklab worker --slurm``) keeps them: the job that trains
each attempt, its state and pending reason as squeue last gave them, and the end Slurm gave it. Every
write names the attempt, as the queue's do (``backend.services.queue``), and is refused once the run has
moved on."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import FailureKind, Run, RunStatus, utcnow
from backend.services.queue import SLURM_WORKER_PREFIX, Claim


@dataclass(frozen=True)
class SlurmRun:
    """A run in Slurm's hands: its attempt, the job submitted for it (None: not yet), what squeue said."""

    run_id: int
    attempt: int
    job_id: int | None
    state: str | None
    cancel_requested: bool
    restarts: int | None = None


def job_comment(run_id: int, attempt: int, site: str) -> str:
    """The ``--comment`` of an attempt's job: the dispatcher finds its jobs by it, whatever their ids.
    ``site`` tells apart two tricklab databases whose run ids meet on one cluster."""
    return f"tricklab:{run_id}:{attempt}:{site}"


def slurm_runs(*, session: Session) -> list[SlurmRun]:
    """Every run in Slurm's hands: running, claimed by a dispatcher."""
    rows = session.execute(
        select(Run.id, Run.attempt, Run.slurm_job_id, Run.slurm_state, Run.cancel_requested, Run.slurm_restarts)
        .where(Run.status == RunStatus.running, Run.worker.like(f"{SLURM_WORKER_PREFIX}%"))
        .order_by(Run.id)
    ).all()
    session.rollback()
    return [
        SlurmRun(row.id, row.attempt, row.slurm_job_id, row.slurm_state, row.cancel_requested, row.slurm_restarts)
        for row in rows
    ]


def job_claim(*, session: Session, run_id: int, attempt: int) -> tuple[Claim, str] | None:
    """Inside the job: the attempt it trains, as a worker's claim, and the run's name; None when the run
    has moved on (cancelled, deleted, or another attempt) since the job was submitted."""
    row = session.execute(
        select(Run.id, Run.attempt, Run.config, Run.sweep, Run.name).where(
            Run.id == run_id, Run.attempt == attempt, Run.status == RunStatus.running
        )
    ).one_or_none()
    session.rollback()
    if row is None:
        return None
    return Claim(run_id=row.id, attempt=row.attempt, config=row.config, sweep=row.sweep), row.name


def run_name(*, session: Session, run_id: int) -> str:
    name = session.scalar(select(Run.name).where(Run.id == run_id))
    session.rollback()
    return name or "run"


def _owned(session: Session, run_id: int, attempt: int) -> Run | None:
    return session.scalars(
        select(Run).where(Run.id == run_id, Run.attempt == attempt, Run.status == RunStatus.running).with_for_update()
    ).one_or_none()


def record_job(
    *,
    session: Session,
    run_id: int,
    attempt: int,
    job_id: int,
    state: str,
    reason: str | None = None,
    nodes: str | None = None,
    restarts: int | None = None,
    requeued: str | None = None,
) -> bool | None:
    """What squeue says of the attempt's job; None when the run has moved on. ``requeued``: why Slurm
    requeued the job since the last look, in one line, kept as the run's latest error."""
    run = _owned(session, run_id, attempt)
    if run is None:
        session.rollback()
        return None
    run.slurm_job_id = job_id
    run.slurm_state = state[:40]
    run.slurm_reason = reason[:200] if reason and reason != "None" else None
    run.slurm_nodes = nodes[:200] if nodes else run.slurm_nodes
    if restarts is not None:
        run.slurm_restarts = restarts
    if requeued:
        run.error = requeued
    session.commit()
    return True


def end_in_slurm(
    *, session: Session, run_id: int, attempt: int, status: RunStatus, error: str, kind: FailureKind | None = None
) -> RunStatus | None:
    """The end Slurm gave the attempt's job, with its reason in ``error``: ``cancelled``, ``failed`` (a
    training failure, retried while tries remain) or ``queued`` (the machine's: handed back, no try
    charged). Returns the run's new status, None when it has moved on."""
    run = _owned(session, run_id, attempt)
    if run is None:
        session.rollback()
        return None
    run.error = error
    run.worker = None
    if status == RunStatus.failed:
        run.failure_kind = kind or FailureKind.training
        run.training_failures += 1
        retry = run.training_failures < run.max_attempts and not run.cancel_requested
        status = RunStatus.queued if retry else status
    elif status == RunStatus.queued:
        run.failure_kind = FailureKind.infrastructure
        run.infrastructure_failures += 1
        status = RunStatus.cancelled if run.cancel_requested else status
    run.status = status
    if status != RunStatus.queued:
        run.finished_at = utcnow()
    session.commit()
    return status
