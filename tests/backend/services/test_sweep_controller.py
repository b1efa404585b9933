"""The sweep controller with real Optuna on SQLite and PostgreSQL: its runs trained through the queue's
own calls (claim, epochs, end) with valid top-1 values chosen from each run's config, so that each
decision (the best found, a prune, a retry, a restart, the verdict) is checked on exact numbers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from sqlalchemy import create_engine, select, text, update
from testlib.sweeps import Workers, sweep_settings

from backend import migrate
from backend.db import Database
from backend.models import Run, RunStatus, Sweep, SweepRun, SweepStatus, SweepTrial, TrialState, utcnow
from backend.schemas.sweep_spec import SweepCreate
from backend.schemas.sweeps import SweepFigures
from backend.services import queue as jobs
from backend.services import sweep_figure_cache, sweep_optuna, sweep_views, sweeps
from backend.services.sweep_controller import advance
from backend.settings import Settings

EPOCHS = 4


@pytest.fixture
def world(database_url: str, tmp_path: Path, demo_dataset: Path) -> Iterator[tuple[Database, Settings]]:
    database = Database(database_url)
    migrate.upgrade(database)
    yield database, sweep_settings(database_url, tmp_path, demo_dataset)
    sweep_optuna.forget(database_url)
    database.dispose()


def base(settings: Settings, **more: Any) -> dict[str, Any]:
    return {
        "data.root": str(settings.data_roots[0]),
        "model.arch": "resnet18",
        "model.pretrained": False,
        "data.image_size": 32,
        "batch_size": 16,
        "epochs": EPOCHS,
        **more,
    }


def create(database: Database, settings: Settings, **body: Any) -> int:
    with database.session(write=True) as session:
        return sweeps.create_sweep(
            session=session, settings=settings, request=SweepCreate.model_validate({"name": "s", **body})
        ).id


def trials(database: Database, sweep_id: int) -> list[SweepTrial]:
    with database.session() as session:
        return list(
            session.scalars(select(SweepTrial).where(SweepTrial.sweep_id == sweep_id).order_by(SweepTrial.number))
        )


def study_of(database: Database, settings: Settings, sweep_id: int) -> optuna.Study:
    with database.session() as session:
        sweep = session.get(Sweep, sweep_id)
    assert sweep is not None
    return sweep_optuna.study(settings.database_url, sweep)


def mixup_curve(config: dict[str, Any], epoch: int) -> float:
    """Mixup alpha 0.1 is clearly best; each seed adds its own noise, so seeds spread."""
    alpha = config["tricks"]["mixup_alpha"]
    top = 80.0 if alpha == 0.1 else 40.0 + 10 * alpha
    return top * epoch / EPOCHS + (config["seed"] % 3) * 0.5


def test_the_clearly_better_setting_is_found_and_confirmed_beyond_noise(world):
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings),
        space={"tricks.mixup_alpha": {"type": "choice", "values": [1.0, 0.2, 0.1, 0.01]}},
        sampler={"name": "grid", "seed": 0},
        budget={"trials": 10, "parallel": 2},
        seeds=2,
        confirm={"top": 2, "seeds": 2},
    )
    workers = Workers(database, settings, mixup_curve)
    workers.drive(sweep_id)
    found = trials(database, sweep_id)
    assert len(found) == 4  # the grid's cells, though the budget allowed 10
    with database.session() as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None and sweep.status == SweepStatus.finished
        winner = next(t for t in found if t.number == sweep.conclusion["winner"])
        assert winner.params == {"tricks.mixup_alpha": 0.1}
        assert sweep.conclusion["text"].startswith(f"#{winner.number} (tricks.mixup_alpha=0.1) beats")
        confirm_seeds = session.scalars(select(SweepRun.seed).where(SweepRun.confirm.is_(True))).all()
        assert sorted(set(confirm_seeds)) == [1236, 1237]  # after the two paired search seeds, 1234 and 1235
    assert [t.state for t in study_of(database, settings, sweep_id).trials] == [optuna.trial.TrialState.COMPLETE] * 4


def test_two_identical_configurations_name_no_winner(world):
    """step_log_every changes no number: the two configurations are one, and the verdict says so."""
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings),
        space={"runtime.step_log_every": {"type": "choice", "values": [10, 20]}},
        sampler={"name": "grid"},
        seeds=2,
        confirm={"top": 2, "seeds": 2},
    )
    Workers(database, settings, lambda config, epoch: 50.0 + epoch + config["seed"] % 4).drive(sweep_id)
    with database.session() as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None and sweep.conclusion["winner"] is None
        assert sweep.conclusion["text"].startswith("no configuration beats #")
        assert "+0.0p [" in sweep.conclusion["text"]


def test_halving_prunes_poor_trials_early(world):
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings),
        space={"tricks.mixup_alpha": {"type": "float", "low": 0.0, "high": 1.0}},
        sampler={"name": "random", "seed": 3},
        pruner={"name": "halving", "min_resource": 1, "reduction_factor": 2},
        budget={"trials": 8, "parallel": 1},
    )

    # Half of the space is poor: alpha above 0.5 (alpha itself sets the trials apart: ties are promoted).
    def curve(config: dict[str, Any], epoch: int) -> float:
        alpha = config["tricks"]["mixup_alpha"]
        return (80.0 if alpha < 0.5 else 20.0) * epoch / EPOCHS + alpha

    workers = Workers(database, settings, curve)
    workers.drive(sweep_id)
    found = trials(database, sweep_id)
    pruned = [t for t in found if t.state == TrialState.pruned]
    assert len(found) == 8 and pruned
    assert workers.epochs_stored < 8 * EPOCHS
    assert all(t.params["tricks.mixup_alpha"] >= 0.5 for t in pruned)
    assert "rung" in (pruned[0].pruned or "") and "against the median" in (pruned[0].pruned or "")
    with database.session() as session:
        run = session.scalars(
            select(Run).join(SweepRun, SweepRun.run_id == Run.id).where(SweepRun.trial_id == pruned[0].id)
        ).one()
        assert run.status == RunStatus.cancelled and run.pruned == pruned[0].pruned
    states = [t.state for t in study_of(database, settings, sweep_id).trials]
    assert states.count(optuna.trial.TrialState.PRUNED) == len(pruned)


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


def test_a_fixed_sampler_seed_reproduces_the_suggestions(world):
    database, settings = world
    body = {
        "base": base(settings),
        "space": {
            "optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "tricks.label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
        },
        "sampler": {"name": "tpe", "seed": 11},
        "budget": {"trials": 3, "parallel": 3},
    }
    first, second = create(database, settings, **body), create(database, settings, **body)
    for sweep_id in (first, second):
        advance(database=database, settings=settings, sweep_id=sweep_id)
    assert [t.params for t in trials(database, first)] == [t.params for t in trials(database, second)]
    assert len({t.params["optim.lr"] for t in trials(database, first)}) == 3


def lr_curve(config: dict[str, Any], epoch: int) -> float:
    """Peaks at a learning rate of 1e-2, falling off with the distance in decades."""
    return (80.0 - 20 * (math.log10(config["optim"]["lr"]) + 2) ** 2) * epoch / EPOCHS


def test_cma_es_searches_a_continuous_space_after_its_startup_trials(world):
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings, epochs=1),
        space={"optim.lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}},
        sampler={"name": "cmaes", "seed": 3, "n_startup_trials": 2},
        budget={"trials": 8, "parallel": 2},
    )
    Workers(database, settings, lr_curve).drive(sweep_id)
    study = study_of(database, settings, sweep_id)
    assert isinstance(study.sampler, optuna.samplers.CmaEsSampler)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 8
    # The trials after the random start were CMA-ES's own: it records their generation.
    assert all("cma:generation" in t.system_attrs for t in done[2:]), [t.system_attrs for t in done]
    assert abs(math.log10(study.best_params["optim.lr"]) + 2) < 1


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


def test_warm_start_brings_in_finished_runs_in_the_space(world):
    database, settings = world
    plain = create(
        database,
        settings,
        base=base(settings),
        space={"tricks.mixup_alpha": {"type": "choice", "values": [0.2, 0.01]}},
        sampler={"name": "grid"},
        budget={"trials": 2, "parallel": 2},
    )
    Workers(database, settings, mixup_curve).drive(plain)
    warm = create(
        database,
        settings,
        base=base(settings),
        space={"tricks.mixup_alpha": {"type": "float", "low": 0.0, "high": 0.5}},
        budget={"trials": 1, "parallel": 1},
        warm_start=True,
    )
    found = trials(database, warm)
    assert sorted(t.params["tricks.mixup_alpha"] for t in found) == [0.01, 0.2]
    assert all(t.warm and t.state == TrialState.complete for t in found)
    assert len(study_of(database, settings, warm).trials) == 2


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


def test_optunas_figures_are_drawn_again_only_once_a_trial_is_told(world):
    database, settings = world
    sweep_id = create(
        database,
        settings,
        base=base(settings),
        space={"tricks.mixup_alpha": {"type": "float", "low": 0.0, "high": 1.0}},
        sampler={"name": "random", "seed": 1},
        budget={"trials": 4, "parallel": 1},
    )
    workers = Workers(database, settings, mixup_curve)
    cache = sweep_figure_cache.FIGURES

    def figures() -> tuple[SweepFigures, int, int]:
        """The figures as a poll reads them, with the cache's lookups that found (hits) and drew (misses)."""
        hits, misses = cache.hits, cache.misses
        with database.session() as session:
            sweep = session.get(Sweep, sweep_id)
            assert sweep is not None
            found = sweep_views.sweep_figures(session=session, settings=settings, sweep=sweep)
        return found, cache.hits - hits, cache.misses - misses

    advance(database=database, settings=settings, sweep_id=sweep_id)
    workers.drive_once(sweep_id)  # trial 0 told COMPLETE
    first, _, drawn = figures()
    assert drawn == 1 and first.parallel is not None and first.importance is None
    again, found, drawn = figures()
    assert (found, drawn) == (1, 0) and again == first
    # Trial 1 asked and running: nothing new for Optuna's figures, which are not drawn again.
    advance(database=database, settings=settings, sweep_id=sweep_id)
    assert figures()[1:] == (1, 0)
    workers.drive_once(sweep_id)  # trial 1 told: drawn again, with both trials and now an importance
    told, found, drawn = figures()
    assert (found, drawn) == (0, 1) and told.importance is not None
    assert told.slice is not None and first.slice is not None
    assert len(told.slice["data"][0]["x"]) == 2 and len(first.slice["data"][0]["x"]) == 1
    # Trial 2's row says complete before Optuna is told (the controller writes its rows first): what is
    # drawn then is shown but not kept, and drawn again once Optuna has been told.
    advance(database=database, settings=settings, sweep_id=sweep_id)
    with database.session(write=True) as session:
        session.execute(
            update(SweepTrial)
            .where(SweepTrial.sweep_id == sweep_id, SweepTrial.number == 2)
            .values(state=TrialState.complete, value=50.0, finished_at=utcnow())
        )
        session.commit()
    assert figures()[1:] == (0, 1) and figures()[1:] == (0, 1)
