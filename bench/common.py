"""Helpers shared by the benchmarks: generated datasets, timing, the RESULT line."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from trainer.data.cub import ROOT_NAME
from trainer.data.demo import write_demo_dataset


def bench_root() -> Path:
    return Path(os.environ.get("TRICKLAB_BENCH_ROOT", Path(tempfile.gettempdir()) / "tricklab-bench"))


def cublike_dataset(*, classes: int, per_class: int, short_side: int = 375) -> Path:
    """A generated dataset in CUB's layout: JPEGs of 500x375 (70%) and 375x500 at ``short_side`` 375.

    Written once per shape under ``bench_root()`` and reused, so repeated runs time the same files.
    """
    parent = bench_root() / f"cublike-{classes}x{per_class}-{short_side}"
    if not (parent / ROOT_NAME / "images.txt").is_file():
        write_demo_dataset(parent, classes=classes, per_class=per_class, size=short_side, seed=0)
    return parent / ROOT_NAME


def machine() -> str:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, {gpu}, torch {torch.__version__}"


def timed(work: Callable[[], object]) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    work()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def drain(batches: Iterable) -> None:
    for _ in batches:
        pass


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_result(**figures: float | int | str) -> None:
    """The last line of every benchmark, read by tests and copied into RESULTS.md."""
    print("RESULT " + " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                               for key, value in figures.items()))
