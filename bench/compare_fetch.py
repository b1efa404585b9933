"""What the compare page fetches, timed against a real server: p50/p95 per page load at N runs x E epochs.

For each size a fresh `tricklab serve --no-worker` (uvicorn in its own process, SQLite) is seeded with
N finished runs of E epochs each, every epoch row full (the report's 8 metrics, the timing fields), and
then loaded the way the compare page loads:

- ``page``: the page as it is, ``GET /api/v1/compare`` and the columnar ``GET /api/v1/metrics/columns``
  (the four charted fields) issued together; a load ends when both answers are in;
- ``rows``: the page as it was, ``/compare`` and then the row-shaped ``GET /api/v1/metrics`` of the
  runs, one after the other, on the same server;
- ``today`` (with ``--today SRC``): the same two requests against a second server started from the
  source tree SRC (a checkout of the code before the change), seeded alike: the previous code's own
  figure, measured in the same run instead of taken from an earlier one;
- ``mlflow`` (with ``--mlflow EXE``, at the first size): MLflow's tracking server seeded with the same
  epoch rows, loaded as its UI charts the four fields (``bench.mlflow_fetch``): the issue's "20x
  MLflow" measured side by side, ``speedup_vs_mlflow`` = MLflow's p95 over the page's.

Loads of the kinds alternate, rotating which goes first, so a shared machine's drifting load falls on
all of them alike. ``page_revalidated`` is a page load whose columns request sends the ETag of the
previous answer (a browser's revalidation), answered 304 without a body. Targets (issue 13): page p95
under 25 ms at 20 x 100 and no worse than linear in runs x epochs up to 200 x 100 (``scaling``: p95 at
200 x 100 over 10 x p95 at 20 x 100, at most 1).

    python -m bench.compare_fetch
    python -m bench.compare_fetch --today /tmp/old   # after `git archive 4ef8e85 | tar -x -C /tmp/old`
    python -m bench.compare_fetch --mlflow /tmp/mlflow/bin/mlflow   # see bench.mlflow_fetch
    python -m bench.compare_fetch --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import MetaData, create_engine, insert

from bench.common import print_result
from bench.mlflow_fetch import check_histories, history_paths, mlflow_page, seed_mlflow, serve_mlflow
from trainer.config import RunConfig
from tricklab.errors import error_for
from tricklab.local import serving

REPO = Path(__file__).resolve().parents[1]
SIZES = ((20, 100), (100, 100), (200, 100))
CHARTED = "train_loss,valid_top1,valid_top5,lr"  # what the compare page draws
# The tricks the seeded runs vary, as a study's groups do; the seed tells replicates apart.
TRICKS = list(itertools.product(("onecycle", "cosine"), (0.0, 0.1), (0.0, 0.2)))

Load = Callable[[httpx.AsyncClient, str], Awaitable[None]]


@contextmanager
def serve(home: Path, source: Path) -> Iterator[tuple[str, str]]:
    """`tricklab serve --no-worker` from the source tree ``source`` with a database of its own in ``home``;
    yields its URL and database URL once it answers."""
    home.mkdir(parents=True)
    database_url = f"sqlite:///{home / 'tricklab.db'}"
    (home / "data").mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(source),
        "TRICKLAB_DATABASE_URL": database_url,
        "TRICKLAB_RUNS_DIR": str(home / "runs"),
        "TRICKLAB_DATA_ROOTS": json.dumps([str(home / "data")]),
    }
    with serving(cwd=source, env=env, log=home / "server.log") as server:
        yield server.url, database_url


def generated_rows(*, runs: int, epochs: int) -> list[list[dict[str, Any]]]:
    """Per run, ``epochs`` full epoch rows (the same on every call)."""
    rng = random.Random(0)
    return [[_epoch_row(epoch, epochs=epochs, rng=rng) for epoch in range(1, epochs + 1)] for _ in range(runs)]


def seed(database_url: str, *, runs: int, epochs: int) -> list[int]:
    """``runs`` succeeded runs with the ``generated_rows``, written into the tables the server made
    (reflected, so that a server of another version, with other columns, is seeded alike)."""
    engine = create_engine(database_url)
    tables = MetaData()
    tables.reflect(engine, only=["runs", "epoch_metrics"])
    run_table, epoch_table = tables.tables["runs"], tables.tables["epoch_metrics"]
    now = datetime.now(UTC).replace(tzinfo=None)  # stored naive UTC, as the app stores it on SQLite
    rng = random.Random(1)
    try:
        with engine.begin() as connection:
            ids = []
            for index in range(runs):
                schedule, smoothing, mixup = TRICKS[index % len(TRICKS)]
                config = RunConfig.from_dict(
                    {
                        "name": f"run {index}",
                        "seed": index // len(TRICKS),
                        "epochs": epochs,
                        "schedule": {"name": schedule},
                        "tricks": {"label_smoothing": smoothing, "mixup_alpha": mixup},
                    }
                )
                row = {
                    "name": config.name,
                    "status": "succeeded",
                    "priority": 0,
                    "config": config.model_dump(mode="json"),
                    "config_hash": config.fingerprint(),
                    "attempt": 1,
                    "max_attempts": 1,
                    "training_failures": 0,
                    "infrastructure_failures": 0,
                    "cancel_requested": False,
                    "start_epoch": 0,
                    "created_at": now,
                    "started_at": now,
                    "finished_at": now,
                    "test_loss": 1.1,
                    "test_top1": 70.0 + rng.random(),
                    "test_top5": 90.0 + rng.random(),
                    "checkpoint_epoch": epochs,
                }
                statement = insert(run_table).values(_columns(run_table, row)).returning(run_table.c.id)
                ids.append(connection.execute(statement).scalar_one())
            rows = [
                _columns(epoch_table, {**row, "run_id": run_id, "attempt": 1, "created_at": now})
                for run_id, run_rows in zip(ids, generated_rows(runs=runs, epochs=epochs), strict=True)
                for row in run_rows
            ]
            connection.execute(insert(epoch_table), rows)
    finally:
        engine.dispose()
    return ids


def _columns(table, values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if key in table.c}


def _epoch_row(epoch: int, *, epochs: int, rng: random.Random) -> dict[str, Any]:
    progress = epoch / epochs
    return {
        "epoch": epoch,
        "train_loss": 5.3 * (1 - progress) + rng.random() * 0.1,
        "train_top1": 80 * progress + rng.random(),
        "train_top5": 95 * progress + rng.random(),
        "valid_loss": 5.0 * (1 - progress) + rng.random() * 0.2,
        "valid_top1": 78 * progress + rng.random() * 2,
        "valid_top5": 94 * progress + rng.random(),
        "lr": 5e-4 * (1 - progress),
        "seconds": 78 + rng.random(),
        "images_per_s": 108 + rng.random(),
        "data_wait_share": 0.6 + rng.random() * 0.05,
        "peak_memory_bytes": 9_800_000_000 + rng.randrange(10_000_000),
        "gpu_utilization": 35 + rng.random() * 5,
    }


async def _get(client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    answer = await client.get(path, headers=headers)
    if answer.status_code not in (200, 304):
        raise error_for(answer)
    return answer


async def page(client: httpx.AsyncClient, ids: str) -> None:
    await asyncio.gather(
        _get(client, f"/api/v1/compare?run_ids={ids}&mode=peak"),
        _get(client, f"/api/v1/metrics/columns?run_ids={ids}&fields={CHARTED}"),
    )


async def rows(client: httpx.AsyncClient, ids: str) -> None:
    await _get(client, f"/api/v1/compare?run_ids={ids}&mode=peak")
    await _get(client, f"/api/v1/metrics?run_ids={ids}")


def revalidated(etags: dict[str, str]) -> Load:
    """A page load whose columns request carries the ETag of the answer before, as a browser sends it."""

    async def load(client: httpx.AsyncClient, ids: str) -> None:
        path = f"/api/v1/metrics/columns?run_ids={ids}&fields={CHARTED}"
        if path not in etags:
            etags[path] = (await _get(client, path)).headers["etag"]
        _, columns = await asyncio.gather(
            _get(client, f"/api/v1/compare?run_ids={ids}&mode=peak"),
            _get(client, path, headers={"If-None-Match": etags[path]}),
        )
        if columns.status_code != 304:
            raise SystemExit(f"a revalidation of unchanged rows answered {columns.status_code}, not 304")

    return load


async def time_loads(
    kinds: dict[str, tuple[str, Load]], ids: str, *, rounds: int, warmup: int
) -> dict[str, list[float]]:
    """Milliseconds of each page load, per kind; kinds take turns going first. The requests are the
    browser's own, concurrent as the page sends them, so raw httpx rather than the synchronous client."""
    clients = {url: httpx.AsyncClient(base_url=url, timeout=60) for url, _ in kinds.values()}
    names = list(kinds)
    times: dict[str, list[float]] = {name: [] for name in names}
    try:
        for round_ in range(warmup + rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                url, load = kinds[name]
                started = time.perf_counter()
                await load(clients[url], ids)
                if round_ >= warmup:
                    times[name].append((time.perf_counter() - started) * 1000)
    finally:
        for client in clients.values():
            await client.aclose()
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=100, help="timed page loads of each kind per size")
    parser.add_argument("--today", type=Path, help="a source tree of the code before, served side by side")
    parser.add_argument("--mlflow", type=Path, help="an `mlflow` executable: its server measured side by side")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and few rounds: checks that it runs")
    args = parser.parse_args(argv)
    if args.mlflow is not None and not (args.mlflow.is_file() and os.access(args.mlflow, os.X_OK)):
        parser.error(
            f"--mlflow {args.mlflow}: not an executable; install MLflow in a virtual environment of its own "
            "(python -m venv /tmp/mlflow && /tmp/mlflow/bin/pip install mlflow) and pass /tmp/mlflow/bin/mlflow"
        )
    # A stopped benchmark stops its servers too: SIGTERM unwinds through their context managers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    sizes, rounds, warmup = (((3, 4), (6, 4), (12, 4)), 3, 1) if args.smoke else (SIZES, args.rounds, 10)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="compare-fetch-") as scratch:
        for runs, epochs in sizes:
            label = f"{runs}x{epochs}"
            mlflow = args.mlflow if (runs, epochs) == sizes[0] else None
            with (
                serve(Path(scratch) / label, REPO) as (url, database_url),
                _today(args.today, scratch, label) as today,
                _mlflow(mlflow, scratch, runs=runs, epochs=epochs) as mlflow_kind,
            ):
                ids = ",".join(map(str, seed(database_url, runs=runs, epochs=epochs)))
                kinds: dict[str, tuple[str, Load]] = {
                    "page": (url, page),
                    "page_revalidated": (url, revalidated({})),
                    "rows": (url, rows),
                }
                if today is not None:
                    today_url, today_database = today
                    if ",".join(map(str, seed(today_database, runs=runs, epochs=epochs))) != ids:
                        raise SystemExit("the two servers' runs got different ids")
                    kinds["today"] = (today_url, rows)
                if mlflow_kind is not None:
                    kinds["mlflow"] = mlflow_kind
                times = asyncio.run(time_loads(kinds, ids, rounds=rounds, warmup=warmup))
            print(f"{runs} runs x {epochs} epochs, {rounds} loads each:")
            for name, values in times.items():
                p50, p95 = statistics.median(values), percentile(values, 0.95)
                print(f"  {name:<17} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
                figures[f"{name}_p95_ms_{label}"] = p95
                figures[f"{name}_p50_ms_{label}"] = p50
    first, last = (f"{runs}x{epochs}" for runs, epochs in (sizes[0], sizes[-1]))
    cells = (sizes[-1][0] * sizes[-1][1]) / (sizes[0][0] * sizes[0][1])
    result: dict[str, float] = {
        f"p95_ms_{runs}x{epochs}": figures[f"page_p95_ms_{runs}x{epochs}"] for runs, epochs in sizes
    }
    result["revalidated_p95_ms_" + first] = figures[f"page_revalidated_p95_ms_{first}"]
    result["rows_p95_ms_" + first] = figures[f"rows_p95_ms_{first}"]
    result["speedup_vs_rows_" + first] = figures[f"rows_p95_ms_{first}"] / figures[f"page_p95_ms_{first}"]
    if args.mlflow is not None:
        result["mlflow_p95_ms_" + first] = figures[f"mlflow_p95_ms_{first}"]
        result["speedup_vs_mlflow_" + first] = figures[f"mlflow_p95_ms_{first}"] / figures[f"page_p95_ms_{first}"]
        result["speedup_vs_mlflow_p50_" + first] = figures[f"mlflow_p50_ms_{first}"] / figures[f"page_p50_ms_{first}"]
    if args.today is not None:
        result["today_p95_ms_" + first] = figures[f"today_p95_ms_{first}"]
        result["speedup_vs_today_" + first] = figures[f"today_p95_ms_{first}"] / figures[f"page_p95_ms_{first}"]
    result["scaling"] = figures[f"page_p95_ms_{last}"] / (cells * figures[f"page_p95_ms_{first}"])
    print_result(**result)


@contextmanager
def _today(source: Path | None, scratch: str, label: str) -> Iterator[tuple[str, str] | None]:
    if source is None:
        yield None
        return
    with serve(Path(scratch) / f"today-{label}", source.resolve()) as running:
        yield running


@contextmanager
def _mlflow(executable: Path | None, scratch: str, *, runs: int, epochs: int) -> Iterator[tuple[str, Load] | None]:
    if executable is None:
        yield None
        return
    with serve_mlflow(executable, Path(scratch) / f"mlflow-{runs}x{epochs}", env=os.environ) as url:
        paths = history_paths(
            seed_mlflow(url, generated_rows(runs=runs, epochs=epochs)), keys=CHARTED.split(","), epochs=epochs
        )
        check_histories(url, paths, points=runs * epochs)
        yield url, mlflow_page(paths)


if __name__ == "__main__":
    main()
