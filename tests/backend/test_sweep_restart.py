"""A real server (``tricklab serve``, its controller thread) killed mid-sweep, and a new one on the same
database: the sweep goes on to its budget with no duplicate trial, each trial told once, each epoch stored
once. Real worker processes train with the fake trainer (tests/backend/fake_trainer.py: no torch)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import func, select
from testlib.processes import REPO

from backend.models import EpochMetric, Run, RunStatus, Sweep, SweepRun, SweepTrial
from backend.services import sweep_optuna
from backend.settings import Settings
from tricklab import Client
from tricklab.local import serving, tricklab_serve, wait_for

EPOCHS = 3
TRIALS = 6


@pytest.fixture
def forget_optuna(database_url: str) -> Iterator[None]:
    yield
    sweep_optuna.forget(database_url)


def server(stack: ExitStack, settings: Settings, log: Path) -> tuple[Client, subprocess.Popen]:
    """``tricklab serve --no-worker`` (the workers are the test's own, so they outlive the server)."""
    running = stack.enter_context(
        serving(cwd=REPO, env=settings.environ(), log=log, command=tricklab_serve("--no-worker"), timeout=60)
    )
    return stack.enter_context(Client(running.url)), running.process


def test_a_server_killed_mid_sweep_is_continued_by_the_next_without_a_duplicate_trial(
    database_url, make_settings, make_database, demo_dataset, start_worker, tmp_path, forget_optuna
):
    settings = make_settings(database_url, data_roots=[demo_dataset], sweep_poll_seconds=0.1)
    database = make_database(settings)
    for _ in range(2):  # started first, they are ready by the time the server is
        start_worker(settings)
    with ExitStack() as first:
        client, process = server(first, settings, tmp_path / "server-1.log")
        sweep_id = client.create_sweep(
            "lr-sensitive slow",
            space={"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
            base={
                "data.root": str(demo_dataset),
                "model.arch": "resnet18",
                "model.pretrained": False,
                "batch_size": 16,
                "epochs": EPOCHS,
            },
            sampler={"name": "random", "seed": 3},
            budget={"trials": TRIALS, "parallel": 2},
        ).id
        # Killed once a trial was told and the next asked: some trials are behind it, some ahead.
        wait_for(lambda: len(client.get_sweep(sweep_id).trials) >= 3, timeout=60, what="a third trial")
        process.send_signal(signal.SIGKILL)
        process.wait()
    with database.session() as session:
        asked = session.scalar(select(func.count()).select_from(SweepTrial)) or 0
    assert asked < TRIALS, "the sweep ended before the server was killed: nothing was left to continue"

    with ExitStack() as second:
        client, _process = server(second, settings, tmp_path / "server-2.log")
        wait_for(lambda: client.get_sweep(sweep_id).ended, timeout=60, what="the sweep to finish")
        swept = client.get_sweep(sweep_id)
    assert swept.status == "finished"

    trials = swept.trials
    assert sorted(t.number for t in trials) == list(range(TRIALS))
    assert all(t.retry_of is None and t.state == "complete" for t in trials)
    # A trial asked twice would repeat Optuna's number, or (a sampler started over) its parameters.
    with database.session() as session:
        rows = session.scalars(select(SweepTrial).where(SweepTrial.sweep_id == sweep_id)).all()
        optuna_numbers = sorted(row.optuna_number for row in rows if row.optuna_number is not None)
        assert optuna_numbers == list(range(TRIALS)), optuna_numbers
        assert len({row.params["optim.lr"] for row in rows}) == TRIALS, [row.params for row in rows]
        told = {row.optuna_number: (row.state, row.value, row.params) for row in rows}
        # One run per trial (one seed), each trained to its end once, its epochs stored once.
        runs = session.scalars(select(Run).join(SweepRun, SweepRun.run_id == Run.id)).all()
        assert len(runs) == TRIALS and {run.status for run in runs} == {RunStatus.succeeded}
        epochs = session.execute(
            select(EpochMetric.run_id, func.count(), func.count(func.distinct(EpochMetric.epoch))).group_by(
                EpochMetric.run_id
            )
        ).all()
        assert sorted(epochs) == sorted((run.id, EPOCHS, EPOCHS) for run in runs)
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None
    # Optuna's study agrees: each trial told once, COMPLETE with tricklab's value and parameters.
    study = sweep_optuna.study(database_url, sweep)
    assert {t.number: (t.state.name.lower(), t.value, t.params) for t in study.trials} == {
        number: (state.value, value, params) for number, (state, value, params) in told.items()
    }
