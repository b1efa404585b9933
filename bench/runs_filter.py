"""The runs list, filtered and sorted, timed against real servers: p95 per request at 1,000 and 10,000
runs x 100 epochs, on SQLite and PostgreSQL, side by side with MLflow's ``search_runs``.

Each system gets the same runs (``bench.runs_filter_data``: written in bulk and kept between bench
runs, keyed by what makes them; ``--fresh`` seeds again). tricklab's (``tricklab serve --no-worker``,
one per database) hold every run with its 100 full epoch rows; MLflow's tracking server (``--mlflow
EXE``, see ``bench.mlflow_fetch``) the params and the metric its search reads (its
``latest_metrics``; the epoch history, which a search never reads, is left out).

Each query is one request of the runs page: a filter, sorted by the peak valid top-1, 100 rows, and
MLflow's ``runs/search`` with the equivalent filter and order (``QUERIES``; no ``or``: MLflow has
none). The first pages of the systems must hold the same runs, checked before timing. Requests to
the systems alternate, rotating which goes first, so that a shared machine's drifting load falls on
all alike; the load average before and after each size's timing is printed and reported
(``load_<size>``). Targets (issue 23): 10x MLflow at p95 (``mlflow_over_<database>[_<query>]_10000``),
and growth from 1,000 to 10,000 runs no faster than linear (``growth``: p95 at 10,000 over 10 x p95
at 1,000, at most 1).

    python -m bench.runs_filter            # SQLite; PostgreSQL too with TRICKLAB_BENCH_POSTGRES_URL
    python -m bench.runs_filter --mlflow /tmp/mlflow/bin/mlflow
    python -m bench.runs_filter --smoke    # 20 and 60 runs x 4 epochs, SQLite, no MLflow
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
from sqlalchemy import create_engine, make_url, text

from bench.common import bench_root, print_result, scratch_folder
from bench.mlflow_fetch import mlflow_server, serve_mlflow
from bench.runs_filter_data import MlflowCache, TricklabCache, experiment_id
from tricklab.local import LocalServer, serving

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "runs-filter"


@dataclass(frozen=True)
class Query:
    """One runs-page request: tricklab's filter and MLflow's equivalent, both sorted by the peak."""

    name: str
    filter: str
    mlflow_filter: str


QUERIES = (
    Query(
        "filtered",
        'config.tricks.mixup_alpha > 0 and config.schedule.name = "cosine" and peak.valid_top1 >= 60',
        "params.mixup_alpha != '0.0' and params.schedule = 'cosine' and metrics.peak_valid_top1 >= 60",
    ),
    Query("all", "", ""),
    Query("seed", "config.seed = 7", "params.seed = '7'"),
    Query("name", 'name like "run 123%"', "attributes.run_name LIKE 'run 123%'"),
)
MAIN = QUERIES[0].name  # the query whose figures carry no query name (sqlite_p95_ms_10000, ...)

Request = Callable[[httpx.Client, Query], list[str]]


@dataclass(frozen=True)
class System:
    """A server under test: how to ask it, and its processes (for the CPU time they spend)."""

    client: httpx.Client
    request: Request
    processes: Callable[[], set[int]]


def _process_tree(pid: int) -> set[int]:
    """``pid`` and its descendants (MLflow's server runs its workers as children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        found.add(current := todo.pop())
        todo += children.get(current, [])
    return found


def _processes(pid: int, more: Callable[[], set[int]] = set) -> Callable[[], set[int]]:
    return lambda: _process_tree(pid) | more()


def cpu_seconds(pids: set[int]) -> float:
    """The user and system CPU time the processes ``pids`` have spent so far (Linux's /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def postgres_backends(admin_url: str, database_url: str) -> Callable[[], set[int]]:
    """The PostgreSQL server processes that serve ``database_url``'s connections."""
    name = make_url(database_url).database

    def backends() -> set[int]:
        engine = create_engine(admin_url)
        with engine.connect() as connection:
            pids = connection.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = :n"), {"n": name}).all()
        engine.dispose()
        return set(pids)

    return backends


@contextmanager
def serve(home: Path, database_url: str) -> Iterator[LocalServer]:
    """`tricklab serve --no-worker` on ``database_url``; yields it once it answers (migrated)."""
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
        yield server


def tricklab_request(client: httpx.Client, query: Query) -> list[str]:
    """The names on the first page."""
    params = {"sort": "-peak.valid_top1", "limit": 100, **({"filter": query.filter} if query.filter else {})}
    answer = client.get(f"/api/v1/runs?{urlencode(params)}")
    answer.raise_for_status()
    return [run["name"] for run in answer.json()["data"]]


def mlflow_request(experiment: str) -> Request:
    def request(client: httpx.Client, query: Query) -> list[str]:
        body = {
            "experiment_ids": [experiment],
            "filter": query.mlflow_filter,
            "order_by": ["metrics.peak_valid_top1 DESC"],
            "max_results": 100,
        }
        answer = client.post("/api/2.0/mlflow/runs/search", json=body)
        answer.raise_for_status()
        return [run["info"]["run_name"] for run in answer.json().get("runs", [])]

    return request


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else samples[0]


def warm(systems: dict[str, System], rounds: int = 3) -> None:
    """Each query a few times on each system before any is timed: the first requests pay for imports,
    caches and the servers' own start, which may still take the cores when their health answers."""
    for _ in range(rounds):
        for query in QUERIES:
            for system in systems.values():
                system.request(system.client, query)


def check_pages(systems: dict[str, System], size: int) -> None:
    """Every system's first page holds the same runs, for every query (runs of equal peak, or with
    none, may come in another order: the pages are compared as sets)."""
    for query in QUERIES:
        pages = {name: system.request(system.client, query) for name, system in systems.items()}
        print(f"first page of {query.name!r} at {size}: {len(next(iter(pages.values())))} runs", flush=True)
        if len({frozenset(page) for page in pages.values()}) > 1:
            raise SystemExit(
                f"the systems disagree on {query.name!r}: { {k: sorted(v)[:5] for k, v in pages.items()} }"
            )


def time_rounds(systems: dict[str, System], query: Query, rounds: int) -> dict[str, tuple[float, float, float]]:
    """Per system over ``rounds`` requests each, the systems alternating: p50 and p95 in ms, and the CPU
    ms its processes spent per request (what a shared machine's load does not inflate: each server
    idles while the others answer)."""
    samples: dict[str, list[float]] = {name: [] for name in systems}
    processes = {name: system.processes() for name, system in systems.items()}
    cpu = {name: cpu_seconds(pids) for name, pids in processes.items()}
    names = list(systems)
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            system = systems[name]
            began = time.perf_counter()
            system.request(system.client, query)
            samples[name].append((time.perf_counter() - began) * 1000)
    return {
        name: (
            statistics.median(values),
            p95(values),
            (cpu_seconds(processes[name]) - cpu[name]) / rounds * 1000,
        )
        for name, values in samples.items()
    }


def _label(system: str, query: Query) -> str:
    return system if query.name == MAIN else f"{system}_{query.name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mlflow", type=Path, help="the mlflow executable of its own virtual environment")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--fresh", action="store_true", help="seed again rather than reuse the kept databases")
    parser.add_argument("--smoke", action="store_true", help="20 and 60 runs x 4 epochs, SQLite only, no MLflow")
    args = parser.parse_args()
    sizes, epochs, rounds = ((20, 60), 4, 5) if args.smoke else ((1000, 10000), 100, args.rounds)
    postgres = None if args.smoke else os.environ.get("TRICKLAB_BENCH_POSTGRES_URL")
    home = scratch_folder("runs-filter-")
    cache_root = bench_root() / "runs-filter-cache"
    caches = {"sqlite": TricklabCache(cache_root, postgres=None, epochs=epochs, fresh=args.fresh)}
    if postgres:
        caches["postgresql"] = TricklabCache(cache_root, postgres=postgres, epochs=epochs, fresh=args.fresh)
    env = dict(os.environ)
    mlflow = None
    if args.mlflow and not args.smoke:
        executable = args.mlflow

        def serve_store(store: Path) -> AbstractContextManager[str]:
            return serve_mlflow(executable, store, env=env)

        mlflow = MlflowCache(cache_root, executable, serve_store, fresh=args.fresh)
    figures: dict[str, float] = {}
    for position, size in enumerate(sizes):
        smaller = sizes[position - 1] if position else None
        seeding = {name: cache.ensure(size, smaller=smaller) for name, cache in caches.items()}
        if mlflow:
            seeding["mlflow"] = mlflow.ensure(size, smaller=smaller, experiment_name=EXPERIMENT)
        print(
            f"{size} runs x {epochs} epochs: seeded in "
            + ", ".join(f"{name} {s:.0f} s" if s else f"{name} kept" for name, s in seeding.items()),
            flush=True,
        )
        with ExitStack() as stack:
            systems: dict[str, System] = {}
            for name, cache in caches.items():
                database_url = stack.enter_context(cache.copy(size))
                server = stack.enter_context(serve(home / f"{name}-{size}", database_url))
                client = stack.enter_context(httpx.Client(base_url=server.url, timeout=300))
                backends = postgres_backends(postgres, database_url) if postgres and name == "postgresql" else set
                systems[name] = System(client, tricklab_request, _processes(server.process.pid, backends))
            if mlflow:
                store = stack.enter_context(mlflow.copy(size, home / f"mlflow-{size}"))
                server = stack.enter_context(mlflow_server(args.mlflow, store, env=env))
                client = stack.enter_context(httpx.Client(base_url=server.url, timeout=300))
                systems["mlflow"] = System(
                    client,
                    mlflow_request(experiment_id(client, EXPERIMENT)),
                    _processes(server.process.pid),
                )
            check_pages(systems, size)
            warm(systems)
            before = os.getloadavg()[0]
            for query in QUERIES:
                timings = time_rounds(systems, query, rounds)
                print(
                    f"p50 / p95 / CPU per request of {query.name!r} at {size} runs: "
                    + ", ".join(f"{name} {a:.1f} / {b:.1f} / {c:.1f} ms" for name, (a, b, c) in timings.items()),
                    flush=True,
                )
                for name, (p50, p95, cpu) in timings.items():
                    figures[f"{_label(name, query)}_p95_ms_{size}"] = p95
                    figures[f"{_label(name, query)}_p50_ms_{size}"] = p50
                    figures[f"{_label(name, query)}_cpu_ms_{size}"] = cpu
            after = os.getloadavg()[0]
            print(f"load average (1 min) on {os.cpu_count()} cores: {before:.2f} before, {after:.2f} after", flush=True)
            figures[f"load_{size}"] = (before + after) / 2
    small, large = sizes
    for query in QUERIES:
        for name in [*caches, *(["mlflow"] if mlflow else [])]:
            label = _label(name, query)
            figures[f"{label}_growth"] = figures[f"{label}_p95_ms_{large}"] / (
                large / small * figures[f"{label}_p95_ms_{small}"]
            )
        if mlflow:
            for name in caches:
                # mlflow_over_<database>[_<query>]_10000 at p95; _p50_10000 at the median, _cpu_ in CPU time
                for quantile, suffix in (("p95", ""), ("p50", "_p50"), ("cpu", "_cpu")):
                    figures[f"mlflow_over_{_label(name, query)}{suffix}_{large}"] = (
                        figures[f"{_label('mlflow', query)}_{quantile}_ms_{large}"]
                        / figures[f"{_label(name, query)}_{quantile}_ms_{large}"]
                    )
    print_result(**figures)


if __name__ == "__main__":
    main()
