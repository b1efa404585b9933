"""After a restart: a lost Optuna study rebuilt from tricklab's rows, and a trial Optuna handed out just
before a crash queued with its parameters instead of being asked again (no duplicate trial)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import SweepTrial, TrialState
from backend.schemas.sweep_spec import SweepSpec
from backend.services import sweep_optuna
from backend.services.sweep_trials import locked, queue_trial
from backend.settings import Settings

log = logging.getLogger("tricklab.sweeps")


def rebuild_if_lost(*, session: Session, spec: SweepSpec, study: Any, sweep_id: int) -> None:
    """tricklab's rows are the source of truth: an Optuna study that lost its trials (its file deleted, its
    schema dropped) is given them again, in order, and the rows take the new trials' numbers."""
    import optuna

    trials = list(
        session.scalars(
            select(SweepTrial)
            .where(SweepTrial.sweep_id == sweep_id, SweepTrial.optuna_number.is_not(None))
            .order_by(SweepTrial.optuna_number)
            .with_for_update()
        )
    )
    if not trials or len(study.get_trials(deepcopy=False)) >= len(trials):
        return
    log.warning("sweep %s: Optuna's study holds fewer trials than tricklab's rows; rebuilding it", sweep_id)
    distributions = sweep_optuna.distributions(spec)
    states = {
        TrialState.complete: optuna.trial.TrialState.COMPLETE,
        TrialState.pruned: optuna.trial.TrialState.PRUNED,
        TrialState.failed: optuna.trial.TrialState.FAIL,
    }
    numbers: dict[int, int] = {}
    for trial in trials:
        if trial.state == TrialState.running:
            study.enqueue_trial(trial.params, skip_if_exists=False)
            asked = study.ask()
            sweep_optuna.suggest(asked, spec)
            numbers[trial.id] = asked.number
            trial.reported_epoch = 0  # its epochs are reported again to the new study's pruner
            continue
        complete = trial.state == TrialState.complete
        study.add_trial(
            optuna.trial.create_trial(
                params=trial.params,
                distributions={key: distributions[key] for key in trial.params},
                value=trial.value if complete else None,
                state=states[trial.state],
            )
        )
        numbers[trial.id] = study.get_trials(deepcopy=False)[-1].number
    for trial in trials:  # two passes: the pair (sweep, number) is unique at every flush
        trial.optuna_number = None
    session.flush()
    for trial in trials:
        trial.optuna_number = numbers[trial.id]
    session.commit()
    sweep_optuna.continue_sampler(study, spec)


def adopt_orphans(*, session: Session, settings: Settings, spec: SweepSpec, study: Any, sweep_id: int) -> None:
    import optuna

    locked(session, sweep_id)  # a trial another controller has just asked for is queued by that one
    known = set(session.scalars(select(SweepTrial.optuna_number).where(SweepTrial.sweep_id == sweep_id)))
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if frozen.number not in known:
            log.info("sweep %s: Optuna's trial %s was asked but never queued; queueing it", sweep_id, frozen.number)
            # Suggested again on the same trial: Optuna answers the values it already gave, and the rest.
            params = sweep_optuna.suggest(optuna.trial.Trial(study, frozen._trial_id), spec)
            queue_trial(
                session=session,
                settings=settings,
                spec=spec,
                sweep_id=sweep_id,
                optuna_number=frozen.number,
                params=params,
            )
    session.commit()
