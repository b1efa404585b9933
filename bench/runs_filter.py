"""The runs list, filtered and sorted, timed against real servers: p95 per request at 1,000 and 10,000
runs x 100 epochs, on SQLite and PostgreSQL, side by side with MLflow's ``search_runs``.

Each system gets the same runs. tricklab's (``tricklab serve --no-worker``, one per database) are
written straight into its tables, every run with its 100 full epoch rows; MLflow's tracking server
(``--mlflow EXE``, see ``bench.mlflow_fetch``) through its REST API, each run with the params and the
metrics its search reads (its ``latest_metrics``; the epoch history, which a search never reads, is
left out so that seeding takes minutes, not hours). The sizes grow in place: the second size adds
runs to the first.

One request is the runs page's: the filter, sorted by the peak valid top-1, 100 rows::

    tricklab  GET /api/v1/runs?filter=config.tricks.mixup_alpha > 0 and config.schedule.name = "cosine"
                  and peak.valid_top1 >= 60&sort=-peak.valid_top1&limit=100
    MLflow    POST /api/2.0/mlflow/runs/search  params.mixup_alpha != '0.0' and params.schedule = 'cosine'
                  and metrics.peak_valid_top1 >= 60, order_by metrics.peak_valid_top1 DESC, 100 rows

(no ``or``: MLflow has none). Requests to the systems alternate, rotating which goes first, so that a
shared machine's drifting load falls on all alike. Targets (issue 23): 10x MLflow at p95, and growth
from 1,000 to 10,000 runs no faster than linear (``growth``: p95 at 10,000 over 10 x p95 at 1,000,
at most 1).

    python -m bench.runs_filter            # SQLite; PostgreSQL too with TRICKLAB_BENCH_POSTGRES_URL
    python -m bench.runs_filter --mlflow /tmp/mlflow/bin/mlflow
    python -m bench.runs_filter --smoke    # 20 and 60 runs x 4 epochs, SQLite, no MLflow
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import MetaData, create_engine, insert, make_url, text

from bench.common import print_result
from bench.mlflow_fetch import serve_mlflow
from trainer.config import RunConfig
from tricklab.local import serving

REPO = Path(__file__).resolve().parents[1]
FILTER = 'config.tricks.mixup_alpha > 0 and config.schedule.name = "cosine" and peak.valid_top1 >= 60'
MLFLOW_FILTER = "params.mixup_alpha != '0.0' and params.schedule = 'cosine' and metrics.peak_valid_top1 >= 60"
SCHEDULES, SMOOTHING, MIXUP = ("onecycle", "cosine"), (0.0, 0.1), (0.0, 0.2)
STATUSES = ("succeeded",) * 8 + ("failed", "cancelled")


def _config(index: int, epochs: int) -> RunConfig:
    schedule = SCHEDULES[index % 2]
    smoothing = SMOOTHING[index // 2 % 2]
    mixup = MIXUP[index // 4 % 2]
    return RunConfig.from_dict(
        {
            "name": f"run {index} {schedule}",
            "seed": index // 8,
            "epochs": epochs,
            "schedule": {"name": schedule},
            "tricks": {"label_smoothing": smoothing, "mixup_alpha": mixup},
        }
    )


def _peak(index: int) -> float:
    return 40 + random.Random(index).random() * 45


@contextmanager
def serve(home: Path, database_url: str) -> Iterator[str]:
    """`tricklab serve --no-worker` on ``database_url``; yields its URL once it answers (migrated)."""
    home.mkdir(parents=True)
    (home / "data").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'client'}",
        "TRICKLAB_DATABASE_URL": database_url,
        "TRICKLAB_RUNS_DIR": str(home / "runs"),
        "TRICKLAB_DATA_ROOTS": json.dumps([str(home / "data")]),
    }
    with serving(cwd=REPO, env=env, log=home / "server.log") as server:
        yield server.url


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A throwaway database on the PostgreSQL server of ``admin_url``; dropped afterwards."""
    name = f"bench_runs_filter_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed_tricklab(database_url: str, *, start: int, stop: int, epochs: int) -> None:
    """Runs ``start``..``stop`` with their epoch rows, into the tables the server made."""
    from backend.reports.compare import configuration_key

    engine = create_engine(database_url)
    tables = MetaData()
    tables.reflect(engine, only=["runs", "epoch_metrics"])
    runs, epoch_rows = tables.tables["runs"], tables.tables["epoch_metrics"]
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        for chunk in range(start, stop, 500):
            with engine.begin() as connection:
                rows = []
                for index in range(chunk, min(chunk + 500, stop)):
                    config = _config(index, epochs)
                    status = STATUSES[index % len(STATUSES)]
                    done = status == "succeeded"
                    rows.append(
                        {
                            "name": config.name,
                            "kind": "training",
                            "status": status,
                            "priority": 0,
                            "config": config.model_dump(mode="json"),
                            "config_hash": config.fingerprint(),
                            "configuration_hash": configuration_key(config),
                            "attempt": 1,
                            "max_attempts": 1,
                            "training_failures": 0,
                            "infrastructure_failures": 0,
                            "cancel_requested": False,
                            "start_epoch": 0,
                            "created_at": now,
                            "test_top1": _peak(index) - 1 if done else None,
                            "peak_valid_top1": _peak(index) if done else None,
                            "peak_epoch": epochs if done else None,
                            "checkpoint_epoch": epochs if done else None,
                        }
                    )
                ids = connection.execute(insert(runs).returning(runs.c.id), rows).scalars().all()
                rng = random.Random(chunk)
                connection.execute(
                    insert(epoch_rows),
                    [
                        {
                            "run_id": run_id,
                            "epoch": epoch,
                            "attempt": 1,
                            "created_at": now,
                            **{
                                key: rng.random() * 80
                                for key in ("train_loss", "train_top1", "valid_loss", "valid_top1", "valid_top5")
                            },
                            "seconds": 78 + rng.random(),
                            "images_per_s": 108 + rng.random(),
                        }
                        for run_id in ids
                        for epoch in range(1, epochs + 1)
                    ],
                )
    finally:
        engine.dispose()


def seed_mlflow(url: str, experiment: str, *, start: int, stop: int) -> None:
    now = int(time.time() * 1000)
    with httpx.Client(base_url=url, timeout=120) as client:

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            answer = client.post(f"/api/2.0/mlflow/{path}", json=body)
            if answer.status_code != 200:
                raise SystemExit(f"MLflow: POST {path} answered {answer.status_code}: {answer.text[:500]}")
            return answer.json()

        for index in range(start, stop):
            config = _config(index, 100)
            run = post("runs/create", {"experiment_id": experiment, "run_name": config.name, "start_time": now})
            run_id = run["run"]["info"]["run_id"]
            params = {
                "schedule": config.schedule.name,
                "label_smoothing": str(config.tricks.label_smoothing),
                "mixup_alpha": str(config.tricks.mixup_alpha),
                "seed": str(config.seed),
            }
            status = STATUSES[index % len(STATUSES)]
            metrics = (
                [{"key": "peak_valid_top1", "value": _peak(index), "timestamp": now, "step": 100}]
                if status == "succeeded"
                else []
            )
            post(
                "runs/log-batch",
                {"run_id": run_id, "params": [{"key": k, "value": v} for k, v in params.items()], "metrics": metrics},
            )
            post("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": now})


def tricklab_request(client: httpx.Client) -> int:
    query = urlencode({"filter": FILTER, "sort": "-peak.valid_top1", "limit": 100})
    answer = client.get(f"/api/v1/runs?{query}")
    answer.raise_for_status()
    return answer.json()["count"]


def mlflow_request(experiment: str) -> Callable[[httpx.Client], int]:
    def request(client: httpx.Client) -> int:
        body = {
            "experiment_ids": [experiment],
            "filter": MLFLOW_FILTER,
            "order_by": ["metrics.peak_valid_top1 DESC"],
            "max_results": 100,
        }
        answer = client.post("/api/2.0/mlflow/runs/search", json=body)
        answer.raise_for_status()
        return len(answer.json().get("runs", []))

    return request


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]


def time_rounds(
    systems: dict[str, tuple[httpx.Client, Callable[[httpx.Client], int]]], rounds: int
) -> dict[str, float]:
    """p95 in ms per system over ``rounds`` requests each, the systems alternating."""
    samples: dict[str, list[float]] = {name: [] for name in systems}
    names = list(systems)
    for client, request in systems.values():
        request(client)  # warm: the first request pays for imports and caches
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            client, request = systems[name]
            began = time.perf_counter()
            request(client)
            samples[name].append((time.perf_counter() - began) * 1000)
    return {name: p95(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mlflow", type=Path, help="the mlflow executable of its own virtual environment")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="20 and 60 runs x 4 epochs, SQLite only, no MLflow")
    args = parser.parse_args()
    sizes, epochs, rounds = ((20, 60), 4, 5) if args.smoke else ((1000, 10000), 100, args.rounds)
    postgres = None if args.smoke else os.environ.get("TRICKLAB_BENCH_POSTGRES_URL")
    home = Path(tempfile.mkdtemp(prefix="runs-filter-"))
    figures: dict[str, float] = {}
    with ExitStack() as stack:
        databases = {"sqlite": f"sqlite:///{home / 'tricklab.db'}"}
        if postgres:
            databases["postgresql"] = stack.enter_context(postgres_database(postgres))
        systems: dict[str, tuple[httpx.Client, Callable[[httpx.Client], int]]] = {}
        for name, database_url in databases.items():
            url = stack.enter_context(serve(home / name, database_url))
            systems[name] = (stack.enter_context(httpx.Client(base_url=url, timeout=300)), tricklab_request)
        experiment = None
        if args.mlflow and not args.smoke:
            url = stack.enter_context(serve_mlflow(args.mlflow, home / "mlflow", env=dict(os.environ)))
            client = stack.enter_context(httpx.Client(base_url=url, timeout=300))
            experiment = client.post("/api/2.0/mlflow/experiments/create", json={"name": "runs-filter"}).json()[
                "experiment_id"
            ]
            systems["mlflow"] = (client, mlflow_request(experiment))
        seeded = 0
        for size in sizes:
            began = time.perf_counter()
            for database_url in databases.values():
                seed_tricklab(database_url, start=seeded, stop=size, epochs=epochs)
            if experiment is not None:
                seed_mlflow(str(systems["mlflow"][0].base_url).rstrip("/"), experiment, start=seeded, stop=size)
            seeded = size
            print(f"seeded {size} runs x {epochs} epochs in {time.perf_counter() - began:.0f} s", flush=True)
            # tricklab answers the number of matches; MLflow its first page (at most 100) only.
            counts = {name: min(request(client), 100) for name, (client, request) in systems.items()}
            print(f"matches at {size} (first page): {counts}", flush=True)
            if len(set(counts.values())) > 1:
                raise SystemExit(f"the systems disagree on the matches: {counts}")
            timings = time_rounds(systems, rounds)
            print(
                f"p95 at {size} runs: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in timings.items()), flush=True
            )
            for name, ms in timings.items():
                figures[f"{name}_p95_ms_{size}"] = ms
        small, large = sizes
        for name in systems:
            figures[f"{name}_growth"] = figures[f"{name}_p95_ms_{large}"] / (
                large / small * figures[f"{name}_p95_ms_{small}"]
            )
        if "mlflow" in systems:
            for name in databases:
                figures[f"mlflow_over_{name}_{large}"] = (
                    figures[f"mlflow_p95_ms_{large}"] / figures[f"{name}_p95_ms_{large}"]
                )
    print_result(**figures)


if __name__ == "__main__":
    main()
