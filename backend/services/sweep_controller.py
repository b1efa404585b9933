"""The sweep controller: Optuna's ask and tell over tricklab's queue. One step of one sweep (``advance``):

- each running trial's new epoch rows are reported to the pruner (the mean over its seeds of the
  objective's best so far, once every seed has the epoch); a prune cancels its runs, marked pruned;
- a trial whose runs all ended is told: COMPLETE with the mean of its seeds' objective, or FAIL, and
  a failed trial's parameters are queued again once;
- while the budget and the clock allow, new trials are asked for, their configs built and validated,
  and their runs queued with the parameters recorded;
- a trial Optuna holds as running that tricklab never recorded (asked just before a crash) is queued
  with its parameters, never asked again: a restarted server makes no duplicate trial;
- once the search is spent, the best configurations rerun over more seeds, ``budget.parallel``
  configurations at a time, then the verdict is kept;
- paused, it queues nothing new, search or confirmation, and its clock stops: the wall-clock limit
  counts running time only.

tricklab's rows are written before Optuna is told, and Optuna is told with ``skip_if_finished``: a
crash between the two tells the trial again on the next step, and Optuna keeps the first.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.db import Database
from backend.models import (
    FINAL_STATUSES,
    EpochMetric,
    Run,
    RunStatus,
    Sweep,
    SweepRun,
    SweepStatus,
    SweepTrial,
    TrialState,
    utcnow,
)
from backend.reports.sweep_verdict import Candidate, verdict
from backend.schemas.sweep_spec import Grid, NoPruner, SweepSpec
from backend.services import runs as run_service
from backend.services import sweep_optuna, sweep_recovery, sweep_trials
from backend.services.errors import Conflict
from backend.services.sweep_plan import grid_size, seeds
from backend.settings import Settings

log = logging.getLogger("tricklab.sweeps")


def advance(*, database: Database, settings: Settings, sweep_id: int) -> None:
    """One step of the sweep: see the module's docstring. Safe to repeat; a sweep that ended is left alone."""
    with database.session() as session:
        sweep = session.get(Sweep, sweep_id)
    if sweep is None or sweep.status in (SweepStatus.finished, SweepStatus.cancelled):
        return
    spec = SweepSpec.of(sweep)
    study = sweep_optuna.study(settings.database_url, sweep)
    # A lost study, or a trial asked just before a crash, can only be met once this process has
    # started: both are looked for at its first step of the sweep, not at every one.
    restarted = sweep_optuna.first_step(settings.database_url, sweep)
    if restarted:
        with database.session(write=True) as session:
            sweep_recovery.rebuild_if_lost(session=session, spec=spec, study=study, sweep_id=sweep_id)
        with database.session(write=True) as session:
            sweep_recovery.adopt_orphans(session=session, settings=settings, spec=spec, study=study, sweep_id=sweep_id)
    with database.session() as session:
        running = session.scalars(
            select(SweepTrial.id).where(SweepTrial.sweep_id == sweep_id, SweepTrial.state == TrialState.running)
        ).all()
    for trial_id in running:
        with database.session(write=True) as session:
            _watch(session=session, settings=settings, spec=spec, study=study, trial_id=trial_id)
    if sweep.status == SweepStatus.running:
        with database.session(write=True) as session:
            _ask(session=session, settings=settings, spec=spec, study=study, sweep_id=sweep_id)
    with database.session(write=True) as session:
        _next_stage(session=session, settings=settings, spec=spec, sweep_id=sweep_id)


# --- running trials -----------------------------------------------------------------------------


def _watch(*, session: Session, settings: Settings, spec: SweepSpec, study: Any, trial_id: int) -> None:
    trial = session.scalars(select(SweepTrial).where(SweepTrial.id == trial_id).with_for_update()).one()
    if trial.state != TrialState.running:
        return
    runs = [run for run, _seed in sweep_trials.trial_runs(session, trial.id)]
    if not isinstance(spec.pruner, NoPruner) and _report(
        session=session, spec=spec, study=study, trial=trial, runs=runs
    ):
        return
    if any(run.status not in FINAL_STATUSES for run in runs):
        session.commit()
        return
    objective = spec.objective_info
    values = [getattr(run, objective.run_column) for run in runs]
    import optuna

    if runs and all(run.status == RunStatus.succeeded for run in runs) and None not in values:
        trial.state, trial.value = TrialState.complete, statistics.fmean(values)
        trial.finished_at = utcnow()
        session.commit()
        study.tell(trial.optuna_number, trial.value, skip_if_finished=True)
        return
    trial.state, trial.finished_at = TrialState.failed, utcnow()
    failed = any(run.status == RunStatus.failed for run in runs)
    retry = failed and trial.retry_of is None and _sweep_status(session, trial.sweep_id) == SweepStatus.running
    if retry:
        # Asked now, with the failed trial's parameters fixed: Optuna records a trial of its own for it.
        study.enqueue_trial(trial.params, skip_if_exists=False)
        asked = study.ask()
        sweep_trials.queue_trial(
            session=session,
            settings=settings,
            spec=spec,
            sweep_id=trial.sweep_id,
            optuna_number=asked.number,
            params=sweep_optuna.suggest(asked, spec),
            retry_of=trial.number,
        )
    session.commit()
    study.tell(trial.optuna_number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def _sweep_status(session: Session, sweep_id: int) -> SweepStatus | None:
    return session.scalar(select(Sweep.status).where(Sweep.id == sweep_id))


def _best_so_far(session: Session, spec: SweepSpec, runs: list[Run]) -> dict[int, list[float]]:
    """Per run, the objective's best value up to each epoch (index 0 = epoch 1), over its consecutive epochs."""
    column = getattr(EpochMetric, spec.objective_info.epoch_column)
    pick = max if spec.objective_info.direction == "maximize" else min
    found: dict[int, list[float]] = {run.id: [] for run in runs}
    rows = session.execute(
        select(EpochMetric.run_id, EpochMetric.epoch, column)
        .where(EpochMetric.run_id.in_([run.id for run in runs]))
        .order_by(EpochMetric.run_id, EpochMetric.epoch)
    ).all()
    for run_id, epoch, value in rows:
        series = found[run_id]
        if value is None or epoch != len(series) + 1:
            continue
        series.append(value if not series else pick(series[-1], value))
    return found


def _report(*, session: Session, spec: SweepSpec, study: Any, trial: SweepTrial, runs: list[Run]) -> bool:
    """Tell the pruner each epoch every seed of the trial has reached; prune it if told to. True if pruned."""
    import optuna

    series = _best_so_far(session, spec, runs)
    reached = min((len(values) for values in series.values()), default=0)
    if reached <= trial.reported_epoch:
        return False
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, trial.optuna_number)
    handle = optuna.trial.Trial(study, trial_id)
    for epoch in range(trial.reported_epoch + 1, reached + 1):
        value = statistics.fmean(values[epoch - 1] for values in series.values())
        handle.report(value, epoch)
        trial.reported_epoch, trial.value = epoch, value
        if epoch < max(run.config["epochs"] for run in runs) and handle.should_prune():
            _prune(session=session, spec=spec, study=study, trial=trial, runs=runs, epoch=epoch, value=value)
            return True
    session.commit()
    return False


def _prune(
    *, session: Session, spec: SweepSpec, study: Any, trial: SweepTrial, runs: list[Run], epoch: int, value: float
) -> None:
    import optuna

    trial.state, trial.finished_at = TrialState.pruned, utcnow()
    trial.pruned = _why_pruned(spec, study, trial, epoch=epoch, value=value)
    for run in runs:
        if run.status not in FINAL_STATUSES:
            run.pruned = trial.pruned
    session.commit()
    for run in runs:
        with contextlib.suppress(Conflict):  # a seed that ended meanwhile has nothing left to stop
            run_service.cancel_run(session=session, run_id=run.id)
    study.tell(trial.optuna_number, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)


def _why_pruned(spec: SweepSpec, study: Any, trial: SweepTrial, *, epoch: int, value: float) -> str:
    """At which rung, against which figures: the other trials' values where this one was judged."""
    title = spec.objective_info.title
    frozen = study.get_trials(deepcopy=False)
    own = next(t for t in frozen if t.number == trial.optuna_number)
    rungs = sorted(int(key.rsplit("_", 1)[1]) for key in own.system_attrs if key.startswith("completed_rung_"))
    if rungs:
        rung = rungs[-1]
        others = [
            t.system_attrs[f"completed_rung_{rung}"] for t in frozen if f"completed_rung_{rung}" in t.system_attrs
        ]
        where = f"epoch {epoch}, rung {rung}"
    else:
        others = [
            t.intermediate_values[epoch] for t in frozen if t.number != own.number and epoch in t.intermediate_values
        ]
        where = f"epoch {epoch}"
    ranked = sorted(others, reverse=spec.objective_info.direction == "maximize")
    figures = ", ".join(f"{v:.2f}" for v in ranked[:8]) + (" ..." if len(ranked) > 8 else "")
    median = statistics.median(others) if others else None
    against = f"median {median:.2f} of {len(others)} trials ({figures})" if median is not None else "no other trial"
    return f"pruned at {where}: {title} {value:.2f}, against the {against}"


# --- new trials ------------------------------------------------------------------------------------


def budget_of(spec: SweepSpec) -> int:
    return min(spec.budget.trials, grid_size(spec)) if isinstance(spec.sampler, Grid) else spec.budget.trials


def _searched(session: Session, sweep_id: int) -> tuple[int, int]:
    """Trials counted against the budget (retries and warm-started ones aside), and trials running."""
    counted = (SweepTrial.warm.is_(False)) & SweepTrial.retry_of.is_(None)
    row = session.execute(
        select(
            func.count().filter(counted),
            func.count().filter(SweepTrial.state == TrialState.running),
        ).where(SweepTrial.sweep_id == sweep_id)
    ).one()
    return int(row[0]), int(row[1])


def _out_of_time(sweep: Sweep, spec: SweepSpec) -> bool:
    """Whether its running time, paused time left out, has reached the limit."""
    minutes = spec.budget.minutes
    if minutes is None:
        return False
    running = (sweep.paused_at or utcnow()) - sweep.created_at - timedelta(seconds=sweep.paused_seconds)
    return running >= timedelta(minutes=minutes)


def _ask(*, session: Session, settings: Settings, spec: SweepSpec, study: Any, sweep_id: int) -> None:
    while True:
        sweep = sweep_trials.locked(session, sweep_id)
        used, running = _searched(session, sweep_id)
        if sweep.status != SweepStatus.running or running >= spec.budget.parallel or used >= budget_of(spec):
            break
        if _out_of_time(sweep, spec):
            break
        asked = study.ask()
        params = sweep_optuna.suggest(asked, spec)
        trial = sweep_trials.queue_trial(
            session=session, settings=settings, spec=spec, sweep_id=sweep_id, optuna_number=asked.number, params=params
        )
        session.commit()
        if trial.state == TrialState.failed:
            import optuna

            study.tell(asked.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    session.commit()


# --- confirmation and verdict ---------------------------------------------------------------------


def _next_stage(*, session: Session, settings: Settings, spec: SweepSpec, sweep_id: int) -> None:
    """Once the search is spent, confirm its best configurations (or conclude on the search's seeds);
    a paused sweep is left where it is."""
    sweep = sweep_trials.locked(session, sweep_id)
    used, running = _searched(session, sweep_id)
    if sweep.status == SweepStatus.running and not running and (used >= budget_of(spec) or _out_of_time(sweep, spec)):
        if spec.confirm and len(_ranked(session, spec, sweep_id)[: spec.confirm.top]) >= 2:
            sweep.status = SweepStatus.confirming
        else:
            _conclude(session, spec, sweep, _ranked(session, spec, sweep_id)[:2])
    if sweep.status == SweepStatus.confirming:
        _confirm(session=session, settings=settings, spec=spec, sweep=sweep)
    session.commit()


def _confirm(*, session: Session, settings: Settings, spec: SweepSpec, sweep: Sweep) -> None:
    """Queue the top configurations' confirmation seeds, ``budget.parallel`` configurations at a time, as
    the search queues its trials; once every one has ended, the verdict. The search is spent, so the
    ranking (complete trials only) no longer changes from one step to the next."""
    assert spec.confirm is not None
    top = _ranked(session, spec, sweep.id)[: spec.confirm.top]
    statuses: dict[int, list[RunStatus]] = {trial.id: [] for trial in top}
    for trial_id, status in session.execute(
        select(SweepRun.trial_id, Run.status)
        .join(Run, Run.id == SweepRun.run_id)
        .where(SweepRun.trial_id.in_(list(statuses)), SweepRun.confirm.is_(True))
    ):
        statuses[trial_id].append(status)
    busy = sum(any(status not in FINAL_STATUSES for status in found) for found in statuses.values())
    for trial in top:
        if statuses[trial.id] or busy >= spec.budget.parallel:
            continue
        for seed in seeds(spec, confirm=True):
            sweep_trials.queue_run(
                session=session, settings=settings, spec=spec, sweep=sweep, trial=trial, seed=seed, confirm=True
            )
            statuses[trial.id].append(RunStatus.queued)
        busy += 1
    if all(found and all(status in FINAL_STATUSES for status in found) for found in statuses.values()):
        _conclude(session, spec, sweep, top)


def _ranked(session: Session, spec: SweepSpec, sweep_id: int) -> list[SweepTrial]:
    complete = session.scalars(
        select(SweepTrial).where(SweepTrial.sweep_id == sweep_id, SweepTrial.state == TrialState.complete)
    ).all()
    sign = -1 if spec.objective_info.direction == "maximize" else 1
    return sorted(complete, key=lambda t: (sign * (t.value or 0.0), t.number))


def _conclude(session: Session, spec: SweepSpec, sweep: Sweep, trials: list[SweepTrial]) -> None:
    column = spec.objective_info.run_column
    candidates = []
    for trial in trials:
        runs = sweep_trials.trial_runs(session, trial.id, confirm=None)
        values = [getattr(run, column) for run, _seed in runs if run.status == RunStatus.succeeded]
        candidates.append(Candidate(trial.number, trial.params, [v for v in values if v is not None]))
    sweep.conclusion = verdict(candidates, direction=spec.objective_info.direction)
    sweep.status, sweep.finished_at = SweepStatus.finished, utcnow()
