"""The sweep controller's overhead at 1,000 trials, on SQLite and PostgreSQL side by side: the time from an
epoch row to its prune decision, and from a run's end to the next trial queued, each as a ratio to a
plain epoch-row insert (the worker's own ``store_epoch``) on the same database.

A sweep (TPE, the median pruner, one seed per trial) is given its finished trials first (all but the
timed rounds' of its 1,000): in Optuna's
storage with their epochs' intermediate values, and in tricklab's tables. Then, round after round, the
controller's step (``sweep_controller.advance``) is timed after each epoch row of the running trial (it
reads the rows, reports them and asks the pruner) and after the run's end (it tells Optuna, asks for the
next trial, builds and validates its config and queues its run). The worker's calls are the queue's own.

    python -m bench.sweep_overhead            # SQLite; PostgreSQL too with TRICKLAB_BENCH_POSTGRES_URL
    python -m bench.sweep_overhead --smoke    # 20 trials, 2 rounds, SQLite
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import optuna
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from backend import migrate
from backend.db import Database
from backend.models import Sweep, SweepTrial, TrialState, utcnow
from backend.schemas.sweep_spec import SweepCreate
from backend.services import queue as jobs
from backend.services import sweep_optuna, sweeps
from backend.services.sweep_controller import advance
from backend.settings import Settings
from bench.common import print_result, scratch_folder
from trainer.data.demo import write_demo_dataset

EPOCHS = 4


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A throwaway database on the PostgreSQL server of ``admin_url``; dropped afterwards."""
    name = f"bench_sweep_overhead_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _prefill(database: Database, settings: Settings, sweep_id: int, trials: int) -> None:
    """``trials`` finished trials, their intermediate values spread so that a good trial is never pruned."""
    with database.session() as session:
        sweep = session.get(Sweep, sweep_id)
    assert sweep is not None
    study = sweep_optuna.study(settings.database_url, sweep)
    distribution = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    done = []
    for index in range(trials):
        lr = 1e-4 * 1000 ** (index / max(1, trials - 1))
        values = {epoch: 40.0 * epoch / EPOCHS + index % 7 for epoch in range(1, EPOCHS + 1)}
        done.append(
            optuna.trial.create_trial(
                params={"optim.lr": lr},
                distributions={"optim.lr": distribution},
                value=values[EPOCHS],
                intermediate_values=values,
            )
        )
    study.add_trials(done)
    rows = [
        {
            "sweep_id": sweep_id,
            "number": index,
            "optuna_number": index,
            "params": {"optim.lr": done[index].params["optim.lr"]},
            "state": TrialState.complete,
            "warm": False,
            "value": done[index].value,
            "reported_epoch": EPOCHS,
            "created_at": utcnow(),
        }
        for index in range(trials)
    ]
    with database.session(write=True) as session:
        session.execute(insert(SweepTrial), rows)
        session.commit()


def _measure(database_url: str, home: Path, data_root: Path, *, trials: int, rounds: int) -> dict[str, float]:
    database = Database(database_url)
    migrate.upgrade(database)
    settings = Settings(
        database_url=database_url, runs_dir=home / "runs", data_roots=[data_root], sweep_controller=False
    )
    body = {
        "name": "overhead",
        "base": {"data.root": str(data_root), "model.arch": "resnet18", "model.pretrained": False, "epochs": EPOCHS},
        "space": {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
        "budget": {"trials": trials, "parallel": 1},
        "pruner": {"name": "median", "n_startup_trials": 0},
    }
    with database.session(write=True) as session:
        sweep_id = sweeps.create_sweep(session=session, settings=settings, request=SweepCreate.model_validate(body)).id
    _prefill(database, settings, sweep_id, trials - rounds)
    advance(database=database, settings=settings, sweep_id=sweep_id)  # queues the first timed trial
    inserts, decisions, nexts = [], [], []
    for _ in range(rounds):
        with database.session(write=True) as session:
            claim = jobs.claim_run(session=session, worker="bench", stale_after_seconds=600)
        assert claim is not None, "the controller queued no trial"
        for epoch in range(1, EPOCHS + 1):
            top1 = 100.0 * epoch / EPOCHS  # above every finished trial: never pruned, so each round ends
            row = {"epoch": epoch, "valid_top1": top1, "valid_top5": top1, "valid_loss": 1.0 / epoch}
            began = time.perf_counter()
            with database.session(write=True) as session:
                jobs.store_epoch(session=session, run_id=claim.run_id, attempt=claim.attempt, row=row)
            inserts.append(time.perf_counter() - began)
            if epoch < EPOCHS:
                began = time.perf_counter()
                advance(database=database, settings=settings, sweep_id=sweep_id)
                decisions.append(time.perf_counter() - began)
        result = {"peak_valid_top1": 100.0, "peak_valid_top5": 100.0, "test_top1": 99.0, "checkpoint_valid_loss": 0.25}
        with database.session(write=True) as session:
            jobs.succeed(session=session, run_id=claim.run_id, attempt=claim.attempt, result=result)
        began = time.perf_counter()
        advance(database=database, settings=settings, sweep_id=sweep_id)
        nexts.append(time.perf_counter() - began)
    sweep_optuna.forget(database_url)
    database.dispose()
    insert_s = statistics.median(inserts)
    return {
        "insert_ms": 1000 * insert_s,
        "prune_ms": 1000 * statistics.median(decisions),
        "next_ms": 1000 * statistics.median(nexts),
        "prune_ratio": statistics.median(decisions) / insert_s,
        "next_ratio": statistics.median(nexts) / insert_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--smoke", action="store_true", help="20 trials, 2 rounds, SQLite only")
    args = parser.parse_args()
    trials, rounds = (20, 2) if args.smoke else (args.trials, args.rounds)
    postgres = None if args.smoke else os.environ.get("TRICKLAB_BENCH_POSTGRES_URL")
    home = scratch_folder("sweep-overhead-")
    write_demo_dataset(home / "data", classes=4, per_class=12, size=40, seed=0)
    figures: dict[str, float] = {}
    with ExitStack() as stack:
        databases = {"sqlite": f"sqlite:///{home / 'tricklab.db'}"}
        if postgres:
            databases["postgresql"] = stack.enter_context(postgres_database(postgres))
        for name, url in databases.items():
            measured = _measure(url, home / name, home / "data", trials=trials, rounds=rounds)
            print(
                f"{name} at {trials} trials: epoch-row insert {measured['insert_ms']:.1f} ms, "
                f"prune decision {measured['prune_ms']:.1f} ms ({measured['prune_ratio']:.1f}x), "
                f"run end to next trial queued {measured['next_ms']:.1f} ms ({measured['next_ratio']:.1f}x)",
                flush=True,
            )
            figures.update({f"{name}_{key}": value for key, value in measured.items()})
    print_result(**figures)


if __name__ == "__main__":
    main()
