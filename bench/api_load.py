"""The API under load: concurrent clients against `tricklab serve` on loopback, then a check that every
run a client was told was created exists, once.

Each client loops over a mix of what the pages and scripts do: list runs (25 %), read one run (25 %),
read the metrics of three runs (20 %), compare three runs (15 %) and create a run (15 %). A create
carries an Idempotency-Key and is sent again with the same key when its answer does not arrive (a
timeout, a dropped connection, a 503), as a careful script would. Targets: errors=0, p99 under 1 s,
missing=0, duplicates=0. The server runs in its own process with its own database (SQLite by
default, or ``--database-url postgresql://...``) and no worker.

    python -m bench.api_load                      # 50 clients for 30 s on SQLite
    python -m bench.api_load --database-url postgresql://tricklab:tricklab@127.0.0.1/tricklab
    python -m bench.api_load --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from backend.db import Database
from backend.services import queue
from backend.settings import Settings
from bench.common import bench_root, print_result
from tricklab import Client, NotFound
from tricklab.local import serving

MIX = {"list": 25, "run": 25, "metrics": 20, "compare": 15, "create": 15}
SEEDED_RUNS = 20
SEEDED_EPOCHS = 10
# No run here trains: from scratch, so that queueing one does not look for ImageNet weights.
SCRATCH = {"pretrained": False}
CLIENT_TIMEOUT_S = 10.0
CREATE_TRIES = 4


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    created: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> the run id the server answered
    replays: int = 0  # creates sent again with their key

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values()) + sum(self.errors.values())


@contextmanager
def serve(home: Path, database_url: str) -> Iterator[tuple[str, Settings, Path]]:
    """`tricklab serve --no-worker` on a free port, with a data root the creates may name."""
    data_root = home / "data"
    (data_root / "CUB_200_2011").mkdir(parents=True, exist_ok=True)
    settings = Settings(database_url=database_url, runs_dir=home / "runs", data_roots=[data_root])
    log = home / "server.log"
    with serving(cwd=home, env={**os.environ, **settings.environ()}, log=log, timeout=60) as server:
        yield server.url, settings, log


def seed(url: str, settings: Settings, *, runs: int) -> list[int]:
    """``runs`` queued runs, the first half with epoch rows, so reads and compares return data."""
    with Client(url, token="") as client:
        data = {"root": str(settings.data_roots[0])}
        ids = [
            client.create_run({"name": f"seeded {index}", "data": data, "epochs": SEEDED_EPOCHS, "model": SCRATCH}).id
            for index in range(runs)
        ]
    database = Database(settings.database_url, busy_timeout_seconds=settings.sqlite_busy_timeout_seconds)
    try:
        for _ in range(runs // 2):
            with database.session(write=True) as session:
                claim = queue.claim_run(session=session, worker="bench", stale_after_seconds=3600)
            assert claim is not None
            for epoch in range(1, SEEDED_EPOCHS + 1):
                row = {"epoch": epoch, "train_loss": 1 / epoch, "valid_top1": 50 + epoch, "valid_top5": 80 + epoch}
                with database.session(write=True) as session:
                    queue.store_epoch(session=session, run_id=claim.run_id, attempt=claim.attempt, row=row)
    finally:
        database.dispose()
    return ids


async def client(
    http: httpx.AsyncClient,
    *,
    tally: Tally,
    ids: list[int],
    data_root: str,
    tag: str,
    deadline: float,
    rng: random.Random,
) -> None:
    kinds, weights = list(MIX), list(MIX.values())
    while time.monotonic() < deadline:
        kind = rng.choices(kinds, weights)[0]
        if kind == "create":
            await create(http, tally=tally, data_root=data_root, tag=tag, rng=rng)
            continue
        three = ",".join(str(run_id) for run_id in rng.sample(ids, 3))
        path = {
            "list": "/api/v1/runs?limit=50",
            "run": f"/api/v1/runs/{rng.choice(ids)}",
            "metrics": f"/api/v1/metrics?run_ids={three}",
            "compare": f"/api/v1/compare?run_ids={three}",
        }[kind]
        await timed(http, tally, kind, "GET", path)


async def create(http: httpx.AsyncClient, *, tally: Tally, data_root: str, tag: str, rng: random.Random) -> None:
    key = secrets.token_hex(16)
    body = {
        "config": {
            "name": f"load {tag} {key}",
            "data": {"root": data_root},
            "epochs": rng.randint(1, 20),
            "model": SCRATCH,
        },
        "priority": rng.randint(-5, 5),
    }
    for attempt in range(CREATE_TRIES):
        if attempt:
            tally.replays += 1
        answer = await timed(http, tally, "create", "POST", "/api/v1/runs", json=body, headers={"Idempotency-Key": key})
        if answer is not None and answer.status_code == 201:
            tally.created[key] = answer.json()["id"]
            return
        if answer is not None and answer.status_code != 503:
            return  # not worth a retry: the error is counted


async def timed(http: httpx.AsyncClient, tally: Tally, kind: str, method: str, path: str, **kwargs: Any):
    started = time.perf_counter()
    try:
        answer = await http.request(method, path, **kwargs)
    except httpx.TimeoutException:
        tally.errors[f"{kind}: timeout"] += 1
        return None
    except httpx.TransportError as exc:
        tally.errors[f"{kind}: {type(exc).__name__}"] += 1
        return None
    if answer.is_success:
        tally.latencies[kind].append(time.perf_counter() - started)
    else:
        tally.errors[f"{kind}: {answer.status_code}"] += 1
    return answer


async def load(url: str, *, clients: int, seconds: float, ids: list[int], data_root: str, tag: str) -> Tally:
    tally = Tally()
    # The clients are coroutines sharing one pool, each request timed alone: raw httpx, since
    # tricklab.Client is synchronous and would retry what the load counts as an error.
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_S, limits=limits) as http:
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(
                client(
                    http, tally=tally, ids=ids, data_root=data_root, tag=tag, deadline=deadline, rng=random.Random(n)
                )
                for n in range(clients)
            )
        )
    return tally


def verify(url: str, tally: Tally, tag: str) -> tuple[int, int]:
    """(created runs not found, runs stored more than once) among this load's creates."""
    with Client(url, token="", timeout=60) as client:
        missing = sum(not _exists(client, run_id) for run_id in tally.created.values())
        names = collections.Counter(run.name for run in client.iter_runs(name=f"load {tag} ", page_size=1000))
    return missing, sum(count - 1 for count in names.values())


def _exists(client: Client, run_id: int) -> bool:
    try:
        client.get_run(run_id)
    except NotFound:
        return False
    return True


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--database-url", help="default: a new SQLite file")
    parser.add_argument("--smoke", action="store_true", help="4 clients for 3 s: only checks the benchmark works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.clients, args.seconds = 4, 3.0

    bench_root().mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="api-load-", dir=bench_root()))
    database_url = args.database_url or f"sqlite:///{home / 'tricklab.db'}"
    tag = secrets.token_hex(4)
    try:
        with serve(home, database_url) as (url, settings, log):
            ids = seed(url, settings, runs=SEEDED_RUNS)
            print(f"{args.clients} clients for {args.seconds:g} s against {url} ({database_url.partition(':')[0]})")
            print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
            started = time.monotonic()
            tally = asyncio.run(
                load(
                    url,
                    clients=args.clients,
                    seconds=args.seconds,
                    ids=ids,
                    data_root=str(settings.data_roots[0]),
                    tag=tag,
                )
            )
            elapsed = time.monotonic() - started
            print(f"load average after:  {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
            missing, duplicates = verify(url, tally, tag)
            server_log = log.read_text()
    finally:
        shutil.rmtree(home, ignore_errors=True)

    everything = [latency for values in tally.latencies.values() for latency in values]
    for kind in MIX:
        values = tally.latencies[kind]
        if values:
            print(
                f"{kind:8} {len(values):6d} ok  p50 {statistics.median(values) * 1000:7.1f} ms  "
                f"p95 {percentile(values, 0.95) * 1000:7.1f} ms  p99 {percentile(values, 0.99) * 1000:7.1f} ms"
            )
    print("errors: " + (", ".join(f"{kind} x{count}" for kind, count in sorted(tally.errors.items())) or "none"))
    print(f"creates: {len(tally.created)} stored, {tally.replays} sent again with their key")
    tracebacks = server_log.count("Traceback")
    print(f"server log: {tracebacks} tracebacks, {server_log.count('database is locked')} 'database is locked'")
    print_result(
        requests=tally.requests,
        errors=sum(tally.errors.values()),
        rps=tally.requests / elapsed,
        p50_ms=statistics.median(everything) * 1000,
        p95_ms=percentile(everything, 0.95) * 1000,
        p99_ms=percentile(everything, 0.99) * 1000,
        created=len(tally.created),
        missing=missing,
        duplicates=duplicates,
        server_tracebacks=tracebacks,
    )


if __name__ == "__main__":
    main()
