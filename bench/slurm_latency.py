"""How long a run waits before it trains, through Slurm and through a plain worker, side by side: the
seconds from ``POST /runs`` to the run running (the plain worker's claim; the Slurm job RUNNING), and to
its first epoch row. Both the worker and the dispatcher (``tricklab worker --slurm``) are started and
idle before each POST, with their default poll interval (1 s); rounds alternate which goes first.

Needs a Slurm: SLURM_CONF, or, as root, the single-host one scripts/slurm starts.

    python -m bench.slurm_latency           # 3 rounds of a tiny 1-epoch run
    python -m bench.slurm_latency --smoke   # 1 round
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from backend.db import Database
from backend.models import EpochMetric, Run
from backend.settings import Settings
from bench.common import bench_root, print_result
from trainer.data.demo import write_demo_dataset
from tricklab import Client
from tricklab.local import serving, wait_for

REPO = Path(__file__).resolve().parents[1]
CONFIG: dict[str, Any] = {
    "model": {"arch": "resnet18", "pretrained": False},
    "epochs": 1,
    "batch_size": 16,
    "data": {"image_size": 32, "num_workers": 0},
}


# Running: the plain worker has claimed the run; the Slurm job has started (squeue says RUNNING).
RUNNING: dict[str, Callable[[Run], bool]] = {
    "plain": lambda run: run.status.value == "running",
    "slurm": lambda run: run.slurm_state == "RUNNING",
}


def slurm_conf() -> str:
    if os.environ.get("SLURM_CONF"):
        return os.environ["SLURM_CONF"]
    done = subprocess.run([str(REPO / "scripts" / "slurm")], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"no Slurm: set SLURM_CONF, or run as root for scripts/slurm ({done.stderr.strip()})")
    return done.stdout.strip().splitlines()[-1]


def measure(
    client: Client, db: Database, data_root: Path, *, name: str, running: Callable[[Run], bool]
) -> tuple[float, float]:
    """Seconds from POST /runs to ``running(run)``, and to the first epoch row."""
    started = time.monotonic()
    data = {**CONFIG["data"], "root": str(data_root)}
    run_id = client.create_run({**CONFIG, "name": name, "data": data}).id

    def get() -> Run:
        with db.session() as session:
            return session.get_one(Run, run_id)

    def first_epoch() -> bool:
        with db.session() as session:
            return session.scalar(select(EpochMetric.epoch).where(EpochMetric.run_id == run_id)) is not None

    wait_for(lambda: running(get()), timeout=300, what=f"{name} to run", interval=0.02)
    to_running = time.monotonic() - started
    wait_for(first_epoch, timeout=300, what=f"{name}'s first epoch", interval=0.02)
    return to_running, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="1 round")
    args = parser.parse_args()
    rounds = 1 if args.smoke else args.rounds
    conf = slurm_conf()
    home = Path(tempfile.mkdtemp(prefix="slurm-latency-", dir=bench_root()))
    data_root = home / "data"
    write_demo_dataset(data_root, classes=4, per_class=12, size=40, seed=0)
    settings = Settings(database_url=f"sqlite:///{home}/tricklab.db", runs_dir=home / "runs", data_roots=[data_root])
    env = {**os.environ, **settings.environ(), "SLURM_CONF": conf}
    figures: dict[str, list[float]] = {"plain": [], "slurm": []}
    epochs: dict[str, list[float]] = {"plain": [], "slurm": []}
    with serving(cwd=home, env=env, log=home / "server.log") as server, Client(server.url, token="") as client:
        db = Database(settings.database_url)
        processes = {
            "plain": ["worker"],
            "slurm": ["worker", "--slurm", "--warning-lead", "0"],
        }
        for index in range(rounds):
            order = ["plain", "slurm"] if index % 2 == 0 else ["slurm", "plain"]
            for kind in order:
                log = (home / f"{kind}.log").open("a")
                process = subprocess.Popen(
                    [sys.executable, "-m", "backend", *processes[kind]],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                try:
                    time.sleep(3)  # started and idle: its imports and migrations are not the run's wait
                    running = (
                        (lambda run: run.status.value == "running")
                        if kind == "plain"
                        else (lambda run: run.slurm_state == "RUNNING")
                    )
                    to_running, to_epoch = measure(client, db, data_root, name=f"{kind}-{index}", running=running)
                finally:
                    process.terminate()
                    process.wait(timeout=60)
                figures[kind].append(to_running)
                epochs[kind].append(to_epoch)
                print(
                    f"round {index + 1} {kind}: running after {to_running:.2f} s, first epoch after {to_epoch:.2f} s",
                    flush=True,
                )
        db.dispose()
    plain_epoch, slurm_epoch = statistics.median(epochs["plain"]), statistics.median(epochs["slurm"])
    print_result(
        plain_running_s=statistics.median(figures["plain"]),
        slurm_running_s=statistics.median(figures["slurm"]),
        plain_first_epoch_s=plain_epoch,
        slurm_first_epoch_s=slurm_epoch,
        slurm_extra_s=slurm_epoch - plain_epoch,
    )


if __name__ == "__main__":
    main()
