"""The sweep controller with real Optuna on SQLite and PostgreSQL, through what goes wrong or is stopped:
a failed trial, a dead worker, a restarted controller, a lost Optuna study, pause, resume and cancel, and
the wall-clock limit. Its runs are trained through the queue's own calls, as in test_sweep_controller.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import optuna
from sqlalchemy import create_engine, select, text, update
from sweep_helpers import EPOCHS, base, create, mixup_curve, study_of, trials
from testlib.sweeps import Workers

from backend.db import Database
from backend.models import RunStatus, Sweep, SweepRun, SweepStatus, SweepTrial, TrialState, utcnow
from backend.services import queue as jobs
from backend.services import sweep_optuna, sweeps
from backend.services.sweep_controller import advance


def test_a_failed_trial_is_told_fail_and_queued_again_once(world):
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings),
        space={"optim.lr": {"type": "choice", "values": [0.001, 0.1]}},
        sampler={"name": "grid"},
        budget={"trials": 2, "parallel": 2},
    )
    workers = Workers(database, settings, mixup_curve, fail=lambda c: c["optim"]["lr"] == 0.1)
    workers.drive(sweep_id)
    found = trials(database, sweep_id)
    failed = [t for t in found if t.params == {"optim.lr": 0.1}]
    assert [t.state for t in failed] == [TrialState.failed, TrialState.failed]
    assert failed[1].retry_of == failed[0].number  # queued again once, not a third time
    first, retry = failed
    assert first.optuna_number is not None and retry.optuna_number is not None
    by_number = {t.number: t.state for t in study_of(database, settings, sweep_id).trials}
    assert by_number[first.optuna_number] == by_number[retry.optuna_number] == optuna.trial.TrialState.FAIL


def test_a_run_requeued_after_its_worker_died_is_told_once(world):
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings),
        space={"optim.lr": {"type": "choice", "values": [0.001]}},
        sampler={"name": "grid"},
        budget={"trials": 1, "parallel": 1},
    )
    advance(database=database, settings=settings, sweep_id=sweep_id)
    workers = Workers(database, settings, mixup_curve)
    workers.claim_all()
    workers.epoch(1)
    # The worker dies: its heartbeat goes stale, and the next claim hands the run to another attempt.
    with database.session(write=True) as session:
        jobs.requeue_stale(session=session, stale_after_seconds=60, now=utcnow() + timedelta(minutes=5))
        session.commit()
    workers.claims.clear()
    workers.drive(sweep_id)
    found = trials(database, sweep_id)
    assert [(t.state, t.retry_of) for t in found] == [(TrialState.complete, None)]
    assert [t.state for t in study_of(database, settings, sweep_id).trials] == [optuna.trial.TrialState.COMPLETE]


def test_a_restarted_controller_continues_without_a_duplicate_trial(world):
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings),
        space={"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
        sampler={"name": "tpe", "seed": 5, "n_startup_trials": 2},
        budget={"trials": 5, "parallel": 2},
    )
    advance(database=database, settings=settings, sweep_id=sweep_id)
    assert len(trials(database, sweep_id)) == 2
    # The server dies right after asking Optuna for a trial, before queueing its runs; a new process
    # (no cached study) starts.
    study_of(database, settings, sweep_id).ask()
    sweep_optuna.forget(settings.database_url)
    advance(database=database, settings=settings, sweep_id=sweep_id)
    found = trials(database, sweep_id)
    assert len(found) == 3 and found[2].optuna_number == 2 and "optim.lr" in found[2].params
    Workers(database, settings, lambda c, e: 50.0 + e).drive(sweep_id)
    found = trials(database, sweep_id)
    numbers = sorted(t.optuna_number for t in found if t.optuna_number is not None)
    assert len(found) == 5 and numbers == list(range(5))
    assert len(study_of(database, settings, sweep_id).trials) == 5


def test_a_lost_optuna_study_is_rebuilt_from_tricklabs_tables(world):
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings),
        space={"tricks.mixup_alpha": {"type": "float", "low": 0.0, "high": 1.0}},
        sampler={"name": "random", "seed": 2},
        budget={"trials": 6, "parallel": 2},
    )
    workers = Workers(database, settings, mixup_curve)
    advance(database=database, settings=settings, sweep_id=sweep_id)
    workers.claim_all()
    for epoch in range(1, EPOCHS + 1):
        workers.epoch(epoch)
    advance(database=database, settings=settings, sweep_id=sweep_id)  # tells two, asks two more
    # Optuna's storage is lost: its file deleted, or its schema dropped.
    sweep_optuna.forget(settings.database_url)
    url, _ = sweep_optuna.storage_url(settings.database_url)
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).unlink()
    else:
        engine = create_engine(settings.database_url)
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {sweep_optuna.SCHEMA} CASCADE"))
        engine.dispose()
    workers.drive(sweep_id)
    found = trials(database, sweep_id)
    study = study_of(database, settings, sweep_id).trials
    assert len(found) == 6 and len(study) == 6
    # The two asked after the rebuild: the sampler goes on, never drawing the first trials' values again.
    assert len({trial.params["tricks.mixup_alpha"] for trial in found}) == 6
    by_number = {t.number: t for t in study}
    for trial in found:
        assert trial.optuna_number is not None
        rebuilt = by_number[trial.optuna_number]
        assert rebuilt.params == trial.params and rebuilt.value == trial.value
        assert rebuilt.state == optuna.trial.TrialState.COMPLETE


def test_pause_resume_and_cancel(world):
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings),
        space={"optim.lr": {"type": "choice", "values": [0.001, 0.01, 0.1]}},
        sampler={"name": "grid"},
        budget={"trials": 3, "parallel": 1},
    )
    with database.session(write=True) as session:
        sweeps.pause_sweep(session=session, sweep_id=sweep_id)
    advance(database=database, settings=settings, sweep_id=sweep_id)
    assert trials(database, sweep_id) == []  # paused: nothing asked
    with database.session(write=True) as session:
        sweeps.resume_sweep(session=session, sweep_id=sweep_id)
    advance(database=database, settings=settings, sweep_id=sweep_id)
    assert len(trials(database, sweep_id)) == 1
    with database.session(write=True) as session:
        sweeps.cancel_sweep(session=session, settings=settings, sweep_id=sweep_id)
    assert [t.state for t in trials(database, sweep_id)] == [TrialState.failed]
    assert set(Workers(database, settings, mixup_curve).statuses().values()) == {RunStatus.cancelled}
    assert [t.state for t in study_of(database, settings, sweep_id).trials] == [optuna.trial.TrialState.FAIL]


def test_no_trial_is_queued_past_the_wall_clock_limit(world):
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings),
        space={"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
        budget={"trials": 5, "parallel": 2, "minutes": 30},
    )
    with database.session(write=True) as session:  # created 31 minutes ago
        session.execute(update(Sweep).where(Sweep.id == sweep_id).values(created_at=utcnow() - timedelta(minutes=31)))
        session.commit()
    advance(database=database, settings=settings, sweep_id=sweep_id)
    assert trials(database, sweep_id) == []
    with database.session() as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None and sweep.status == SweepStatus.finished
        assert sweep.conclusion == {"winner": None, "text": "no trial finished: no configuration to name", "rows": []}


def shift(database: Database, sweep_id: int, **back: timedelta) -> None:
    """Move the sweep's moments (created_at, paused_at) back in time by the given spans."""
    with database.session(write=True) as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None
        for column, span in back.items():
            setattr(sweep, column, getattr(sweep, column) - span)
        session.commit()


def test_time_spent_paused_does_not_count_against_the_wall_clock(world):
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings),
        space={"optim.lr": {"type": "choice", "values": [0.001, 0.01, 0.1]}},
        sampler={"name": "grid"},
        budget={"trials": 3, "parallel": 1, "minutes": 30},
    )
    advance(database=database, settings=settings, sweep_id=sweep_id)
    with database.session(write=True) as session:
        sweeps.pause_sweep(session=session, sweep_id=sweep_id)
    # Created 31 minutes ago, 20 of them paused: 11 minutes of running time.
    shift(database, sweep_id, created_at=timedelta(minutes=31), paused_at=timedelta(minutes=20))
    Workers(database, settings, mixup_curve).drive_once(sweep_id)  # the first trial ends while paused
    with database.session(write=True) as session:
        public = sweeps.resume_sweep(session=session, sweep_id=sweep_id)
        assert public.paused_at is None and 20 * 60 <= public.paused_seconds < 21 * 60
    advance(database=database, settings=settings, sweep_id=sweep_id)
    assert [t.state for t in trials(database, sweep_id)] == [TrialState.complete, TrialState.running]
    # 20 more minutes of running time: 31 in all, past the limit; the running trial ends, none follows.
    shift(database, sweep_id, created_at=timedelta(minutes=20))
    Workers(database, settings, mixup_curve).drive(sweep_id)
    assert [t.state for t in trials(database, sweep_id)] == [TrialState.complete, TrialState.complete]


def test_pause_holds_the_confirmation_stage(world):
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings),
        space={"tricks.mixup_alpha": {"type": "choice", "values": [0.2, 0.1, 0.01]}},
        sampler={"name": "grid", "seed": 0},
        budget={"trials": 3, "parallel": 1},
        confirm={"top": 3, "seeds": 2},
    )
    workers = Workers(database, settings, mixup_curve)
    while status(database, sweep_id) == SweepStatus.running:
        advance(database=database, settings=settings, sweep_id=sweep_id)
        workers.drive_once(sweep_id)
    # Confirming, one configuration at a time (budget.parallel): its two seeds are queued, and it is paused.
    assert status(database, sweep_id) == SweepStatus.confirming
    assert confirm_runs(database, sweep_id) == 2
    with database.session(write=True) as session:
        sweeps.pause_sweep(session=session, sweep_id=sweep_id)
    workers.drive_once(sweep_id)  # the queued confirmation runs finish; nothing new is queued
    advance(database=database, settings=settings, sweep_id=sweep_id)
    assert set(workers.statuses().values()) == {RunStatus.succeeded}
    assert confirm_runs(database, sweep_id) == 2 and status(database, sweep_id) == SweepStatus.paused
    with database.session(write=True) as session:
        assert sweeps.resume_sweep(session=session, sweep_id=sweep_id).status == SweepStatus.confirming
    advance(database=database, settings=settings, sweep_id=sweep_id)
    assert confirm_runs(database, sweep_id) == 4
    workers.drive(sweep_id)
    with database.session() as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None and sweep.status == SweepStatus.finished
        assert [row["n"] for row in sweep.conclusion["rows"]] == [3, 3, 3]  # a search seed and 2 confirmation seeds
    assert confirm_runs(database, sweep_id) == 6


def status(database: Database, sweep_id: int) -> SweepStatus:
    with database.session() as session:
        found = session.scalar(select(Sweep.status).where(Sweep.id == sweep_id))
    assert found is not None
    return found


def confirm_runs(database: Database, sweep_id: int) -> int:
    with database.session() as session:
        return len(
            session.scalars(
                select(SweepRun.run_id)
                .join(SweepTrial, SweepTrial.id == SweepRun.trial_id)
                .where(SweepTrial.sweep_id == sweep_id, SweepRun.confirm.is_(True))
            ).all()
        )
