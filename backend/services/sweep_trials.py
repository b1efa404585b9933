"""A sweep's trials as tricklab's rows: one recorded and its runs queued (one per paired seed, its
parameters applied), and a trial's runs read back. Shared by the controller and its recovery."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Run, Sweep, SweepRun, SweepTrial, TrialState, utcnow
from backend.schemas.sweep_spec import SweepSpec
from backend.services import runs as run_service
from backend.services.errors import InvalidConfig
from backend.services.sweep_plan import seeds, trial_config
from backend.settings import Settings

log = logging.getLogger("tricklab.sweeps")


def locked(session: Session, sweep_id: int) -> Sweep:
    """The sweep's row, locked until the commit: one controller at a time asks for it (PostgreSQL; on
    SQLite every write transaction holds the database's lock)."""
    return session.scalars(select(Sweep).where(Sweep.id == sweep_id).with_for_update()).one()


def trial_runs(session: Session, trial_id: int, *, confirm: bool | None = False) -> list[tuple[Run, int]]:
    statement = (
        select(Run, SweepRun.seed).join(SweepRun, SweepRun.run_id == Run.id).where(SweepRun.trial_id == trial_id)
    )
    if confirm is not None:
        statement = statement.where(SweepRun.confirm.is_(confirm))
    return [(run, seed) for run, seed in session.execute(statement.order_by(SweepRun.seed)).all()]


def queue_trial(
    *,
    session: Session,
    settings: Settings,
    spec: SweepSpec,
    sweep_id: int,
    optuna_number: int,
    params: dict[str, Any],
    retry_of: int | None = None,
) -> SweepTrial:
    """Record the trial and queue one run per paired seed (flushed, not committed)."""
    sweep = session.get(Sweep, sweep_id)
    assert sweep is not None
    number = session.scalar(
        select(func.coalesce(func.max(SweepTrial.number) + 1, 0)).where(SweepTrial.sweep_id == sweep_id)
    )
    trial = SweepTrial(sweep_id=sweep_id, number=number, optuna_number=optuna_number, params=params, retry_of=retry_of)
    session.add(trial)
    session.flush()
    try:
        for seed in seeds(spec):
            queue_run(session=session, settings=settings, spec=spec, sweep=sweep, trial=trial, seed=seed, confirm=False)
    except InvalidConfig as exc:
        # A combination RunConfig refuses (checked per bound at creation, not per pair): the trial fails.
        log.warning("sweep %s trial %s: %s", sweep_id, number, exc)
        trial.state, trial.finished_at, trial.pruned = TrialState.failed, utcnow(), f"refused: {exc}"
    return trial


def queue_run(
    *, session: Session, settings: Settings, spec: SweepSpec, sweep: Sweep, trial: SweepTrial, seed: int, confirm: bool
) -> None:
    name = f"{sweep.name} #{trial.number} seed {seed}" + (" confirm" if confirm else "")
    with session.begin_nested():
        run = run_service.queue_run(
            session=session,
            settings=settings,
            config=trial_config(spec, trial.params, seed=seed, name=name[:200]),
            priority=spec.priority,
            created_by=sweep.created_by,
        )
        session.add(SweepRun(run_id=run.id, trial_id=trial.id, seed=seed, confirm=confirm))
