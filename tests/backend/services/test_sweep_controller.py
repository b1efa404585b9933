"""The sweep controller with real Optuna on SQLite and PostgreSQL, finding: its runs trained through the
queue's own calls (claim, epochs, end) with valid top-1 values chosen from each run's config, so that each
decision (the best found and confirmed, a prune, the samplers' suggestions, a warm start, Optuna's figures)
is checked on exact numbers. Failures, restarts, pauses and the wall clock: test_sweep_controller_lifecycle.py."""

from __future__ import annotations

import math
from typing import Any

import optuna
from sqlalchemy import select, update
from sweep_helpers import EPOCHS, base, create, mixup_curve, study_of, trials
from testlib.sweeps import Workers

from backend.models import Run, RunStatus, Sweep, SweepRun, SweepStatus, SweepTrial, TrialState, utcnow
from backend.schemas.sweeps import SweepFigures
from backend.services import sweep_figure_cache, sweep_views
from backend.services.sweep_controller import advance


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
