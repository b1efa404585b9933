"""One run on 1 process and on several, side by side: images/s, scaling, and the per-step loss.

Both train the same config (same global batch) through the real entry points: ``python -m trainer
run`` alone, and the same under torchrun (``python -m trainer launch``, as the worker starts it).
On a machine with at least 2 GPUs, 1 GPU against all of them (NCCL); otherwise 1 CPU process against
2 gloo processes. Rounds alternate which goes first, so a shared machine's drifting load falls on
both alike. Throughput is the trainer's own global images/s of the epochs after the first (warm-up);
the scaling efficiency is the N-process rate over N times the 1-process rate. The loss difference is
the relative difference of each step's loss, over the first epoch and over the whole run.

    python -m bench.distributed           # CPU: resnet18 at 64 px; GPUs: resnet50 at 224 px
    python -m bench.distributed --smoke   # any machine, tiny: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from bench.common import cublike_dataset, print_result, replicated_dataset
from bench.training import machine
from trainer.protocol import launch_command, parse_event

REPO = Path(__file__).resolve().parents[1]


def train(config: dict[str, Any], *, processes: int, env: dict[str, str], folder: Path) -> list[dict[str, Any]]:
    """One run of ``config`` in a fresh folder; its events, as the worker would read them."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    trainer = [sys.executable, "-m", "trainer", "run"]
    command = trainer if processes == 1 else launch_command(trainer, nproc_per_node=processes)
    done = subprocess.run(
        [*command, str(folder)], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"the {processes}-process run failed:\n{done.stderr[-3000:]}")
    return [event for line in done.stdout.splitlines() if (event := parse_event(line)) is not None]


def rate(events: list[dict[str, Any]]) -> float:
    """Median global images/s of the epochs after the first (all of them when there is one)."""
    rows = [event for event in events if event["type"] == "epoch"]
    return statistics.median(row["images_per_s"] for row in rows[1:] or rows)


def loss_differences(single: list[dict[str, Any]], multi: list[dict[str, Any]]) -> list[float]:
    steps = [[event["loss"] for event in events if event["type"] == "step"] for events in (single, multi)]
    return [abs(a - b) / abs(a) for a, b in zip(*steps, strict=True)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only checks the benchmark works")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, alternating (default 2)")
    args = parser.parse_args(argv)
    gpus = 0 if args.smoke else torch.cuda.device_count()
    print(f"machine: {machine()}")
    if gpus >= 2:
        processes, label = gpus, f"{gpus} GPUs (NCCL)"
        root = replicated_dataset(classes=200, per_class=59, distinct_per_class=3)
        config: dict[str, Any] = {"epochs": 3, "batch_size": 64 * gpus, "model": {"arch": "resnet50"}}
        config["data"] = {"image_size": 224}
        envs = {1: {"CUDA_VISIBLE_DEVICES": "0"}, processes: {}}
    else:
        processes, label = 2, "2 CPU processes (gloo)"
        shape = (4, 8) if args.smoke else (8, 40)
        root = cublike_dataset(classes=shape[0], per_class=shape[1], short_side=40 if args.smoke else 80)
        config = {
            "epochs": 1 if args.smoke else 3,
            "batch_size": 8 if args.smoke else 32,
            "model": {"arch": "resnet18"},
            "data": {"image_size": 32 if args.smoke else 64},
            "runtime": {"device": "cpu"},
        }
        # The one process gets the cores the two share; torchrun gives each rank one thread.
        threads = str(len(os.sched_getaffinity(0)))
        envs = {1: {"OMP_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": ""}, processes: {"CUDA_VISIBLE_DEVICES": ""}}
        if args.smoke:
            args.rounds = 1
    config["name"] = "distributed-bench"
    config["model"]["pretrained"] = False
    config["data"] |= {"root": str(root), "num_workers": 0}
    config["runtime"] = {**config.get("runtime", {}), "step_log_every": 1}
    print(f"1 vs {label}: {json.dumps(config)}")

    rates: dict[int, list[float]] = {1: [], processes: []}
    differences: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tricklab-distributed-bench-") as scratch:
        for round_ in range(args.rounds):
            order = [1, processes] if round_ % 2 == 0 else [processes, 1]
            events = {n: train(config, processes=n, env=envs[n], folder=Path(scratch) / f"{round_}-{n}") for n in order}
            for n in order:
                rates[n].append(rate(events[n]))
            differences = loss_differences(events[1], events[processes])
            print(f"round {round_}: " + ", ".join(f"{n} process(es) {rates[n][-1]:.1f} images/s" for n in order))
    steps_per_epoch = len(differences) // config["epochs"]
    single, multi = statistics.median(rates[1]), statistics.median(rates[processes])
    speedup = multi / single
    print(
        f"median images/s: 1 process {single:.1f}, {processes} processes {multi:.1f}: {speedup:.2f}x, "
        f"scaling efficiency {speedup / processes:.2f}"
    )
    print("per-step loss, relative difference: " + " ".join(f"{d:.1e}" for d in differences))
    print_result(
        processes=processes,
        single_img_s=single,
        multi_img_s=multi,
        speedup=speedup,
        efficiency=speedup / processes,
        loss_diff_first_epoch=max(differences[:steps_per_epoch]),
        loss_diff_max=max(differences),
    )


if __name__ == "__main__":
    main()
