"""A run's start: the trainer exec'd as a new ``python -m trainer run`` against the trainer forked by the
fork server (``trainer.fork_server``, what a worker does by default), on the same tiny runs, alternating.

For each: the seconds from launch to the trainer's first event (its start: imports, data and model
ready), the seconds to its exit, and the CPU seconds the trainer process used in all (its own and its
children's, from the exit status: ``getrusage`` for the exec'd child, ``wait4`` in the fork server for
the forked one). The fork server's own start (importing the trainer once) is reported apart: it is paid
once per worker. Targets: ``start_ratio`` (forked over exec'd seconds to start) well under 0.5, and
``cpu_saved_s`` (CPU seconds each forked run saves) about one trainer import.

    python -m bench.trainer_start            # 4 rounds of a resnet18 at 32 px, 1 epoch on 32 images
    python -m bench.trainer_start --smoke
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from backend.worker.child import TrainerChild
from bench.common import cublike_dataset, print_result
from bench.training import machine
from trainer.config import RunConfig
from trainer.forked import ForkedTrainer, ForkServerProcess


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_start(folder: Path, config: dict[str, Any], *, fork_server: Path | None) -> dict[str, float]:
    folder.mkdir(parents=True)
    RunConfig.from_dict(config).save(folder / "config.json")
    command = [sys.executable, "-m", "trainer", "run", str(folder)]
    cpu_before = children_cpu_seconds()
    launched = time.perf_counter()
    child = TrainerChild(command, dict(os.environ), fork_server=fork_server)
    assert isinstance(child.process, ForkedTrainer) == (fork_server is not None), "the launch was not the one asked"
    started = None
    while not child.stdout_closed:
        event = child.next_event(timeout=60)
        if event is not None and started is None:
            started = time.perf_counter()
    returncode = child.reap()
    ended = time.perf_counter()
    if returncode != 0 or started is None:
        raise SystemExit(f"the trainer failed ({returncode}): {''.join(child.stderr_tail)[-2000:]}")
    forked_cpu = child.process.cpu_seconds if isinstance(child.process, ForkedTrainer) else None
    cpu = forked_cpu if forked_cpu is not None else children_cpu_seconds() - cpu_before
    return {"start_s": started - launched, "run_s": ended - launched, "cpu_s": cpu}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4, help="exec'd and forked runs each, alternating (default 4)")
    parser.add_argument("--smoke", action="store_true", help="one round: only checks that the benchmark works")
    args = parser.parse_args(argv)
    rounds = 1 if args.smoke else args.rounds
    root = cublike_dataset(classes=4, per_class=8, short_side=40)
    config = {
        "name": "trainer-start-bench",
        "epochs": 1,
        "batch_size": 8,
        "data": {"root": str(root), "image_size": 32, "num_workers": 0},
        "model": {"arch": "resnet18", "pretrained": False},
        "runtime": {"device": "cpu"},
    }
    print(f"machine: {machine()}")
    figures: dict[str, list[dict[str, float]]] = {"exec": [], "forked": []}
    with tempfile.TemporaryDirectory(prefix="tricklab-trainer-start-bench-") as scratch:
        server_launched = time.perf_counter()
        server = ForkServerProcess(Path(scratch))
        if not server.ready():
            raise SystemExit("the fork server did not start")
        server_start_s = time.perf_counter() - server_launched
        try:
            for round_ in range(rounds):
                order = ["exec", "forked"] if round_ % 2 == 0 else ["forked", "exec"]
                for kind in order:
                    socket_path = server.socket_path if kind == "forked" else None
                    figures[kind].append(one_start(Path(scratch) / f"{round_}-{kind}", config, fork_server=socket_path))
                print(f"round {round_}: " + ", ".join(f"{kind} {figures[kind][-1]}" for kind in order))
        finally:
            server.stop()
    median = {
        kind: {key: statistics.median(row[key] for row in rows) for key in rows[0]} for kind, rows in figures.items()
    }
    print(f"fork server ready in {server_start_s:.2f} s; medians: {median}")
    print_result(
        exec_start_s=median["exec"]["start_s"],
        forked_start_s=median["forked"]["start_s"],
        start_ratio=median["forked"]["start_s"] / median["exec"]["start_s"],
        exec_cpu_s=median["exec"]["cpu_s"],
        forked_cpu_s=median["forked"]["cpu_s"],
        cpu_saved_s=median["exec"]["cpu_s"] - median["forked"]["cpu_s"],
        server_start_s=server_start_s,
    )


if __name__ == "__main__":
    main()
