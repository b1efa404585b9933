"""Sweeps as the API sees them: create (checked whole before anything is queued), read, pause, resume,
cancel. The controller (``sweep_controller``) queues the trials; creating a sweep queues none itself.

Functions take the session and commit what they change, as the studies service does.
"""

from __future__ import annotations

import contextlib
import statistics
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import (
    ACTIVE_SWEEP_STATUSES,
    FINAL_STATUSES,
    Run,
    RunKind,
    RunStatus,
    Sweep,
    SweepRun,
    SweepStatus,
    SweepTrial,
    TrialState,
    utcnow,
)
from backend.reports.compare import configuration_key
from backend.schemas.sweep_spec import ChoiceParam, SweepCreate, SweepSpec
from backend.services import runs as run_service
from backend.services import sweep_optuna
from backend.services.errors import Conflict, InvalidConfig, InvalidSearch, NotFound
from backend.services.sweep_plan import applies, check, trial_config, value_at
from backend.settings import Settings
from trainer.config import RunConfig, apply_overrides


def create_sweep(*, session: Session, settings: Settings, request: SweepCreate, created_by: str | None = None) -> Sweep:
    """Check the request against RunConfig and the server (dataset, weights, batch) and store the sweep;
    with ``warm_start``, finished runs whose configs fall in the space join as completed trials."""
    spec = request.spec()
    check(spec)
    _check_queueable(session=session, settings=settings, spec=spec)
    sweep = Sweep(name=request.name, spec=spec.model_dump(mode="json"), created_by=created_by)
    session.add(sweep)
    session.commit()
    if spec.warm_start:
        warm_start(session=session, settings=settings, sweep=sweep)
    return sweep


def _check_queueable(*, session: Session, settings: Settings, spec: SweepSpec) -> None:
    """Queue one run at the space's first corner inside a savepoint, then roll it back: the run
    service's checks (the dataset, the teacher, the weights, the batch) answer for every trial."""
    params = {
        key: param.values[0] if isinstance(param, ChoiceParam) else param.low for key, param in spec.space.items()
    }
    savepoint = session.begin_nested()
    try:
        run_service.queue_run(
            session=session, settings=settings, config=trial_config(spec, params, seed=0, name="check")
        )
    except InvalidConfig as exc:
        savepoint.rollback()
        where = {field: ("space", field) if field in spec.space else ("base", field) for field in exc.errors}
        raise InvalidSearch({where[field]: message for field, message in exc.errors.items()}) from None
    savepoint.rollback()


def warm_start(*, session: Session, settings: Settings, sweep: Sweep) -> int:
    """Bring in succeeded runs whose configuration is the base's but for values inside the space:
    each configuration joins as one completed trial (its seeds' mean). Returns how many joined."""
    import optuna

    spec = SweepSpec.of(sweep)
    study = sweep_optuna.study(settings.database_url, sweep)
    distributions = sweep_optuna.distributions(spec)
    column = spec.objective_info.run_column
    base = RunConfig.from_dict(apply_overrides({}, spec.base)).model_dump(mode="json")
    found: dict[str, tuple[dict[str, Any], list[Run]]] = defaultdict(lambda: ({}, []))
    for run in session.scalars(
        select(Run).where(Run.status == RunStatus.succeeded, Run.kind == RunKind.training).order_by(Run.id)
    ):
        params = _params_in_space(spec, run.config, base)
        if params is None or getattr(run, column) is None:
            continue
        try:
            expected = RunConfig.from_dict(trial_config(spec, params, seed=run.config["seed"], name="warm"))
        except ValueError:
            continue
        # data.root is stored absolute: compare with the run's own, which the base named.
        expected = expected.model_copy(
            update={"data": expected.data.model_copy(update={"root": run.config["data"]["root"]})}
        )
        if configuration_key(expected) != run.configuration_hash:
            continue
        key = repr(sorted(params.items()))
        found[key][0].update(params)
        found[key][1].append(run)
    number = 0
    for params, runs in found.values():
        value = statistics.fmean(getattr(run, column) for run in runs)
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions={key: distributions[key] for key in params}, value=value
            )
        )
        optuna_number = study.get_trials(deepcopy=False)[-1].number
        trial = SweepTrial(
            sweep_id=sweep.id,
            number=number,
            optuna_number=optuna_number,
            params=params,
            state=TrialState.complete,
            warm=True,
            value=value,
            finished_at=utcnow(),
        )
        session.add(trial)
        session.flush()
        for run in runs:
            session.add(SweepRun(run_id=run.id, trial_id=trial.id, seed=run.config["seed"], confirm=False))
        number += 1
    session.commit()
    return number


def _params_in_space(spec: SweepSpec, config: dict[str, Any], base: dict[str, Any]) -> dict[str, Any] | None:
    """The run's values of the space's keys that act in it (a condition's key read from the run), or None
    where one lies outside the space."""
    found = {key: value_at(config, key) for key in spec.space}
    params: dict[str, Any] = {}
    for key, param in spec.space.items():
        if not applies(key, found, base):
            continue
        value = value_at(config, key)
        if isinstance(param, ChoiceParam):
            if value not in param.values:
                return None
        elif isinstance(value, bool) or not isinstance(value, int | float) or not param.low <= value <= param.high:
            return None
        params[key] = value
    return params


# --- reading ------------------------------------------------------------------------------------


def get_sweep(*, session: Session, sweep_id: int, for_update: bool = False) -> Sweep:
    statement = select(Sweep).where(Sweep.id == sweep_id)
    sweep = session.scalars(statement.with_for_update() if for_update else statement).one_or_none()
    if sweep is None:
        raise NotFound(f"sweep {sweep_id} not found")
    return sweep


def list_sweeps(*, session: Session, skip: int = 0, limit: int = 100) -> tuple[list[Sweep], int]:
    count = session.scalar(select(func.count()).select_from(Sweep))
    found = session.scalars(select(Sweep).order_by(Sweep.id.desc()).offset(skip).limit(limit)).all()
    return list(found), count or 0


def active_sweep_ids(*, session: Session) -> list[int]:
    return list(session.scalars(select(Sweep.id).where(Sweep.status.in_(ACTIVE_SWEEP_STATUSES)).order_by(Sweep.id)))


# --- pause, resume, cancel ----------------------------------------------------------------------


def pause_sweep(*, session: Session, sweep_id: int) -> Sweep:
    """Queue no new trial and no new confirmation run; the running ones finish and are told. The time it
    stays paused does not count against its wall-clock limit."""
    sweep = get_sweep(session=session, sweep_id=sweep_id, for_update=True)
    if sweep.status not in (SweepStatus.running, SweepStatus.confirming):
        raise Conflict(f"sweep {sweep_id} is {sweep.status.value}; only a running or confirming sweep can be paused")
    sweep.status, sweep.paused_at = SweepStatus.paused, utcnow()
    session.commit()
    return sweep


def resume_sweep(*, session: Session, sweep_id: int) -> Sweep:
    """Go on where it was paused: searching, or confirming once its confirmation has begun."""
    sweep = get_sweep(session=session, sweep_id=sweep_id, for_update=True)
    if sweep.status != SweepStatus.paused:
        raise Conflict(f"sweep {sweep_id} is {sweep.status.value}; only a paused sweep can be resumed")
    confirming = session.scalar(
        select(func.count())
        .select_from(SweepRun)
        .join(SweepTrial, SweepTrial.id == SweepRun.trial_id)
        .where(SweepTrial.sweep_id == sweep_id, SweepRun.confirm.is_(True))
    )
    sweep.status = SweepStatus.confirming if confirming else SweepStatus.running
    if sweep.paused_at is not None:
        sweep.paused_seconds += (utcnow() - sweep.paused_at).total_seconds()
        sweep.paused_at = None
    session.commit()
    return sweep


def cancel_sweep(*, session: Session, settings: Settings, sweep_id: int) -> Sweep:
    """Cancel the sweep's queued and running runs (as cancelling each run does) and stop it; the
    trials they belonged to are told FAIL."""
    sweep = get_sweep(session=session, sweep_id=sweep_id, for_update=True)
    if sweep.status not in ACTIVE_SWEEP_STATUSES:
        raise Conflict(f"sweep {sweep_id} is {sweep.status.value}; nothing to cancel")
    sweep.status, sweep.finished_at = SweepStatus.cancelled, utcnow()
    running = list(
        session.scalars(
            select(SweepTrial).where(SweepTrial.sweep_id == sweep_id, SweepTrial.state == TrialState.running)
        )
    )
    for trial in running:
        trial.state, trial.finished_at = TrialState.failed, utcnow()
    pending = session.scalars(
        select(Run.id)
        .join(SweepRun, SweepRun.run_id == Run.id)
        .join(SweepTrial, SweepTrial.id == SweepRun.trial_id)
        .where(SweepTrial.sweep_id == sweep_id, Run.status.not_in(FINAL_STATUSES))
    ).all()
    session.commit()
    for run_id in pending:
        with contextlib.suppress(Conflict):  # ended meanwhile
            run_service.cancel_run(session=session, run_id=run_id)
    if running:
        import optuna

        study = sweep_optuna.study(settings.database_url, sweep)
        for trial in running:
            if trial.optuna_number is not None:
                study.tell(trial.optuna_number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    return sweep
