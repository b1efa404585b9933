"""Optuna, as the sweep controller uses it: its storage beside tricklab's tables, and a sweep's study
rebuilt from the settings stored on the sweep (so that a restarted server continues it).

Optuna's tables (``studies``, ``trials``, its own ``alembic_version``) would clash with tricklab's: on
PostgreSQL they live in a schema of their own, on SQLite in a file of their own beside tricklab's.
Optuna is imported lazily: the web process pays for it only once a sweep exists.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from backend.models import Sweep
from backend.schemas.sweep_spec import (
    TPE,
    ChoiceParam,
    CmaEs,
    FloatParam,
    Grid,
    Halving,
    MedianPruner,
    RandomSearch,
    SweepSpec,
)
from backend.services.sweep_plan import applies, base_values, ordered_keys

if TYPE_CHECKING:
    import optuna

SCHEMA = "optuna"
_lock = threading.Lock()
_storages: dict[str, Any] = {}
_studies: dict[tuple[str, str], Any] = {}
_stepped: set[tuple[str, str]] = set()


def storage_url(database_url: str) -> tuple[str, dict[str, Any]]:
    """Optuna's URL and engine arguments for tricklab's ``database_url``."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "tricklab.db")
        return f"sqlite:///{path.with_name(path.stem + '.optuna' + path.suffix)}", {}
    return database_url, {"connect_args": {"options": f"-csearch_path={SCHEMA}"}}


def storage(database_url: str) -> Any:
    """One RDBStorage per database, made (with its schema on PostgreSQL) on first use."""
    import optuna

    with _lock:
        found = _storages.get(database_url)
        if found is None:
            url, engine_kwargs = storage_url(database_url)
            if make_url(url).get_backend_name() == "postgresql":
                engine = create_engine(url)
                with engine.begin() as connection:
                    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
                engine.dispose()
            found = _storages[database_url] = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        return found


def first_step(database_url: str, sweep: Sweep) -> bool:
    """Whether this process steps the sweep for the first time (then its study is checked against
    tricklab's rows, once)."""
    key = (database_url, study_name(sweep))
    with _lock:
        first = key not in _stepped
        _stepped.add(key)
    return first


def forget(database_url: str) -> None:
    """Drop the cached storage and studies of a database (a test's, once it is dropped; a lost study)."""
    with _lock:
        found = _storages.pop(database_url, None)
        for key in [key for key in _studies if key[0] == database_url]:
            del _studies[key]
        _stepped.difference_update({key for key in _stepped if key[0] == database_url})
    if found is not None:
        found.engine.dispose()


def study_name(sweep: Sweep) -> str:
    # The creation time too: a new database (sweep ids from 1 again) beside an old Optuna file.
    return f"tricklab-sweep-{sweep.id}-{sweep.created_at:%Y%m%dT%H%M%S%f}"


def distributions(spec: SweepSpec) -> dict[str, Any]:
    import optuna

    found: dict[str, Any] = {}
    for key, param in spec.space.items():
        if isinstance(param, ChoiceParam):
            found[key] = optuna.distributions.CategoricalDistribution(param.values)
        elif isinstance(param, FloatParam):
            found[key] = optuna.distributions.FloatDistribution(param.low, param.high, log=param.log)
        else:
            found[key] = optuna.distributions.IntDistribution(param.low, param.high, log=param.log)
    return found


def _grid_sampler(space: dict[str, list[Any]], seed: int | None) -> Any:
    import optuna

    class AskAndTellGrid(optuna.samplers.GridSampler):
        # Optuna's grid stops the study once its cells are used, which only an objective function may
        # do; the controller stops asking at the grid's size itself (``budget_of``).
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskAndTellGrid(space, seed=seed)


def _seed(seed: int | None, asked: int) -> int | None:
    """The sampler's seed in a process that loads a study already holding ``asked`` trials: a sampler
    seeded as at the start would draw its first suggestions again (a restarted server would repeat the
    trials before it). Derived from both, it still reproduces a sweep restarted at the same point."""
    if seed is None or not asked:
        return seed
    return (seed * 1_000_003 + asked) % 2**32


def _sampler(spec: SweepSpec, *, asked: int = 0) -> Any:
    import optuna

    sampler = spec.sampler.model_copy(update={"seed": _seed(spec.sampler.seed, asked)})
    if isinstance(sampler, TPE):
        # The constant liar keeps trials queued at once from being suggested the same point.
        return optuna.samplers.TPESampler(
            seed=sampler.seed, n_startup_trials=sampler.n_startup_trials, constant_liar=True
        )
    if isinstance(sampler, RandomSearch):
        return optuna.samplers.RandomSampler(seed=sampler.seed)
    if isinstance(sampler, Grid):
        space = {key: param.values for key, param in spec.space.items() if isinstance(param, ChoiceParam)}
        return _grid_sampler(space, sampler.seed)
    assert isinstance(sampler, CmaEs)
    return optuna.samplers.CmaEsSampler(seed=sampler.seed, n_startup_trials=sampler.n_startup_trials)


def continue_sampler(study: optuna.Study, spec: SweepSpec) -> None:
    """A study that already holds trials (loaded by a restarted server, or rebuilt) gets a sampler that
    goes on from them, not one that would draw the first suggestions again."""
    asked = len(study.get_trials(deepcopy=False))
    if asked:
        study.sampler = _sampler(spec, asked=asked)


def _pruner(spec: SweepSpec) -> Any:
    import optuna

    pruner = spec.pruner
    if isinstance(pruner, MedianPruner):
        return optuna.pruners.MedianPruner(
            n_startup_trials=pruner.n_startup_trials, n_warmup_steps=pruner.n_warmup_steps
        )
    if isinstance(pruner, Halving):
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=pruner.min_resource,
            reduction_factor=pruner.reduction_factor,
            min_early_stopping_rate=pruner.min_early_stopping_rate,
        )
    return optuna.pruners.NopPruner()


def study(database_url: str, sweep: Sweep) -> optuna.Study:
    """The sweep's study, created on first use and kept in memory (the sampler's seeded random state
    goes on from one suggestion to the next)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    key = (database_url, study_name(sweep))
    with _lock:
        found = _studies.get(key)
    if found is not None:
        return found
    spec = SweepSpec.of(sweep)
    found = optuna.create_study(
        storage=storage(database_url),
        study_name=key[1],
        sampler=_sampler(spec),
        pruner=_pruner(spec),
        direction=spec.objective_info.direction,
        load_if_exists=True,
    )
    continue_sampler(found, spec)
    with _lock:
        return _studies.setdefault(key, found)


def suggest(trial: optuna.Trial, spec: SweepSpec) -> dict[str, Any]:
    """The trial's parameters, each conditional key only where its condition holds."""
    base = base_values(spec)
    params: dict[str, Any] = {}
    for key in ordered_keys(spec):
        if not applies(key, params, base):
            continue
        param = spec.space[key]
        if isinstance(param, ChoiceParam):
            params[key] = trial.suggest_categorical(key, param.values)
        elif isinstance(param, FloatParam):
            params[key] = trial.suggest_float(key, param.low, param.high, log=param.log)
        else:
            params[key] = trial.suggest_int(key, param.low, param.high, log=param.log)
    return params
