"""Sweeps with real worker processes (the fake trainer, tests/backend/fake_trainer.py: no torch) and the
server's controller thread (``SweepLoop``), on SQLite and PostgreSQL: pruning stops poor runs as their
epochs arrive, and a worker killed mid-trial leaves a trial that is retried by the queue and told once."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from backend.db import Database
from backend.models import EpochMetric, Run, RunStatus, Sweep, SweepRun, SweepStatus, SweepTrial, TrialState
from backend.schemas.sweep_spec import SweepCreate
from backend.services import sweep_optuna, sweeps
from backend.services.sweep_loop import SweepLoop
from backend.settings import Settings
from tricklab.local import wait_for

EPOCHS = 6


@pytest.fixture
def controlled(database_url, make_settings, make_database, demo_dataset) -> Iterator[tuple[Database, Settings]]:
    settings = make_settings(database_url, data_roots=[demo_dataset], sweep_poll_seconds=0.1, sweep_controller=False)
    database = make_database(settings)
    loop = SweepLoop(database=database, settings=settings)
    loop.start()
    yield database, settings
    loop.stop()
    sweep_optuna.forget(database_url)


def create(database: Database, settings: Settings, **body: Any) -> int:
    base = {
        "data.root": str(settings.data_roots[0]),
        "model.arch": "resnet18",
        "model.pretrained": False,
        "batch_size": 16,
        "epochs": EPOCHS,
    }
    request = SweepCreate.model_validate({"name": "lr-sensitive slow", "base": base, **body})
    with database.session(write=True) as session:
        return sweeps.create_sweep(session=session, settings=settings, request=request).id


def status(database: Database, sweep_id: int) -> SweepStatus:
    with database.session() as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None
        return sweep.status


def test_halving_stops_poor_runs_as_their_epochs_arrive_and_a_killed_worker_costs_no_trial(
    controlled, start_worker, database_url
):
    database, settings = controlled
    sweep_id = create(
        database,
        settings,
        space={"optim.lr": {"type": "choice", "values": [1e-3, 0.1, 3e-3, 0.3]}},
        sampler={"name": "grid", "seed": 1},
        pruner={"name": "halving", "min_resource": 1, "reduction_factor": 2},
        budget={"trials": 4, "parallel": 1},
    )
    first = start_worker(settings)

    def epochs() -> int:
        with database.session() as session:
            return session.scalar(select(func.count()).select_from(EpochMetric)) or 0

    # The worker dies mid-trial: the queue hands its run to the next worker once its heartbeat is stale.
    wait_for(lambda: epochs() >= 1, timeout=60, what="the first epoch")
    first.send_signal(signal.SIGKILL)
    first.wait()
    start_worker(settings)
    wait_for(lambda: status(database, sweep_id) == SweepStatus.finished, timeout=120, what="the sweep to finish")

    def stopping() -> int:  # the last pruned run may still be stopping when the verdict is in
        with database.session() as session:
            return session.scalar(select(func.count()).select_from(Run).where(Run.status == RunStatus.running)) or 0

    wait_for(lambda: stopping() == 0, timeout=30, what="the pruned runs to stop")
    with database.session() as session:
        trials = session.scalars(select(SweepTrial).where(SweepTrial.sweep_id == sweep_id)).all()
        pruned = [trial for trial in trials if trial.state == TrialState.pruned]
        # Poor trials are stopped early (halving may stop the lesser of the good two as well, at a later rung).
        assert any(trial.params["optim.lr"] >= 0.01 for trial in pruned)
        stored = session.scalar(select(func.count()).select_from(EpochMetric))
        assert stored is not None and stored < 4 * EPOCHS
        runs = session.scalars(
            select(Run).join(SweepRun, SweepRun.run_id == Run.id).where(SweepRun.trial_id.in_([t.id for t in pruned]))
        ).all()
        assert {run.status for run in runs} == {RunStatus.cancelled}
        assert all(run.pruned and "rung" in run.pruned for run in runs)
        best = max((t for t in trials if t.state == TrialState.complete), key=lambda t: t.value or 0)
        assert best.params["optim.lr"] == 3e-3
        # The killed run was resumed by a second attempt, and its trial told once: no retry, no extra trial.
        killed = session.scalars(select(Run).order_by(Run.id).limit(1)).one()
        assert killed.attempt == 2 and killed.status in (RunStatus.succeeded, RunStatus.cancelled)
        assert len(trials) == 4 and all(trial.retry_of is None for trial in trials)
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None
        told = {trial.optuna_number: trial.state.value for trial in trials}
    study = sweep_optuna.study(database_url, sweep)
    assert {t.number: t.state.name.lower() for t in study.trials} == told
