"""MLflow's side of the compare fetch: its tracking server seeded with the same epoch rows, and what its
UI fetches to chart them, so that ``bench.compare_fetch --mlflow`` measures both in one run.

MLflow is not a dependency of tricklab: install it in a virtual environment of its own and pass the
``mlflow`` executable of that environment (``python -m venv /tmp/mlflow && /tmp/mlflow/bin/pip install
mlflow``). Its server runs with one worker process, as tricklab's does, on its own SQLite file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tricklab.local import LocalServer, serving

# The report's eight per-epoch metrics, each logged as an MLflow metric whose step is the epoch.
METRICS = ("train_loss", "train_top1", "train_top5", "valid_loss", "valid_top1", "valid_top5", "lr", "seconds")
HISTORY = "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"  # what MLflow's run charts request


@contextmanager
def serve_mlflow(executable: Path, home: Path, *, env: Mapping[str, str]) -> Iterator[str]:
    """MLflow's server on ``home``'s ``mlflow.db`` (made where there is none yet); yields its URL."""
    with mlflow_server(executable, home, env=env) as server:
        yield server.url


@contextmanager
def mlflow_server(executable: Path, home: Path, *, env: Mapping[str, str]) -> Iterator[LocalServer]:
    """As ``serve_mlflow``, yielding the server (its process too)."""
    home.mkdir(parents=True, exist_ok=True)

    def command(port: int) -> Sequence[str]:
        return [
            str(executable),
            "server",
            "--backend-store-uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--default-artifact-root",
            str(home / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]

    with serving(cwd=home, env=env, log=home / "server.log", timeout=180, command=command, health="/health") as server:
        yield server


def seed_mlflow(url: str, rows_of_runs: Sequence[Sequence[Mapping[str, Any]]]) -> list[str]:
    """One finished MLflow run per entry of ``rows_of_runs`` (its epoch rows), through MLflow's REST API;
    the run ids, in order."""
    now = int(time.time() * 1000)
    with httpx.Client(base_url=url, timeout=120) as client:

        def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            answer = client.post(f"/api/2.0/mlflow/{path}", json=body)
            if answer.status_code != 200:
                raise SystemExit(f"MLflow: POST {path} answered {answer.status_code}: {answer.text[:500]}")
            return answer.json()

        experiment = post("experiments/create", {"name": "compare-fetch"})["experiment_id"]
        ids = []
        for index, rows in enumerate(rows_of_runs):
            run = post("runs/create", {"experiment_id": experiment, "run_name": f"run {index}", "start_time": now})
            run_id = run["run"]["info"]["run_id"]
            metrics = [
                {"key": key, "value": row[key], "timestamp": now, "step": row["epoch"]}
                for row in rows
                for key in METRICS
            ]
            for start in range(0, len(metrics), 1000):  # MLflow takes at most 1,000 metrics a batch
                post("runs/log-batch", {"run_id": run_id, "metrics": metrics[start : start + 1000]})
            post("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": now})
            ids.append(run_id)
    return ids


def history_paths(run_ids: Sequence[str], *, keys: Sequence[str], epochs: int) -> list[str]:
    """What MLflow's charts of ``keys`` request: one history per metric, each for every epoch of every
    run (``max_results`` = epochs, so that nothing is sampled away)."""
    runs = "&".join(f"run_ids={run_id}" for run_id in run_ids)
    return [f"{HISTORY}?{runs}&metric_key={key}&max_results={epochs}" for key in keys]


def check_histories(url: str, paths: Sequence[str], *, points: int) -> None:
    """Each history holds every point (runs x epochs): the two servers answer with the same data."""
    with httpx.Client(base_url=url, timeout=120) as client:
        for path in paths:
            answered = len(client.get(path).raise_for_status().json().get("metrics", []))
            if answered != points:
                raise SystemExit(f"MLflow answered {answered} points, not {points}: {path[:120]}")


def mlflow_page(paths: Sequence[str]) -> Callable[[httpx.AsyncClient, str], Awaitable[None]]:
    """A load of MLflow's charts: the history requests issued together."""

    async def history(client: httpx.AsyncClient, path: str) -> None:
        answer = await client.get(path)
        if answer.status_code != 200:
            raise SystemExit(f"MLflow: GET {path[:120]} answered {answer.status_code}: {answer.text[:500]}")

    async def load(client: httpx.AsyncClient, _ids: str) -> None:
        await asyncio.gather(*(history(client, path) for path in paths))

    return load
