"""Helpers shared by the benchmarks: generated datasets, timing, the RESULT line. No PyTorch: the benchmarks
of the server, the queue and sweeps start without it (``bench.training`` holds what trains)."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from trainer.data.cub import ROOT_NAME, read_cub
from trainer.data.demo import write_demo_dataset


def bench_root() -> Path:
    return Path(os.environ.get("TRICKLAB_BENCH_ROOT", Path(tempfile.gettempdir()) / "tricklab-bench"))


def scratch_folder(prefix: str) -> Path:
    """A new folder under ``bench_root()`` for one run's databases and runs: the test suite points the root
    into its own temporary folder, so that its smoke runs leave nothing in the system's."""
    root = bench_root()
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def cublike_dataset(*, classes: int, per_class: int, short_side: int = 375) -> Path:
    """A generated dataset in CUB's layout: JPEGs of 500x375 (70%) and 375x500 at ``short_side`` 375.

    Written once per shape under ``bench_root()`` and reused, so repeated runs time the same files.
    """
    parent = bench_root() / f"cublike-{classes}x{per_class}-{short_side}"
    if not (parent / ROOT_NAME / "images.txt").is_file():
        write_demo_dataset(parent, classes=classes, per_class=per_class, size=short_side, seed=0)
    return parent / ROOT_NAME


def replicated_dataset(*, classes: int, per_class: int, distinct_per_class: int) -> Path:
    """A CUB-sized dataset from a few generated JPEGs per class, each hard-linked several times.

    Generating 11,788 images one by one takes minutes; decoding and training cost the same whether
    files repeat or not, so a dataset of CUB's size and resolution needs only a few distinct ones.
    """
    parent = bench_root() / f"cublike-{classes}x{per_class}-from-{distinct_per_class}"
    root = parent / ROOT_NAME
    if (root / "images.txt").is_file():
        return root
    source = read_cub(cublike_dataset(classes=classes, per_class=distinct_per_class))
    staging = Path(tempfile.mkdtemp(prefix="partial-", dir=bench_root()))
    lines: dict[str, list[str]] = {"images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": []}
    for label, name in enumerate(source.classes):
        originals = [sample.path for sample in source.samples if sample.label == label]
        (staging / "images" / name).mkdir(parents=True)
        for copy in range(per_class):
            image_id = label * per_class + copy + 1
            relative = f"{name}/{copy:04d}_{originals[copy % len(originals)].name}"
            os.link(originals[copy % len(originals)], staging / "images" / relative)
            lines["images.txt"].append(f"{image_id} {relative}")
            lines["image_class_labels.txt"].append(f"{image_id} {label + 1}")
            lines["train_test_split.txt"].append(f"{image_id} {copy % 2}")
    lines["classes.txt"] = [f"{label + 1} {name}" for label, name in enumerate(source.classes)]
    for file, rows in lines.items():
        (staging / file).write_text("\n".join(rows) + "\n")
    parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, root)
    return root


def alternate(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Time each variant once per round, rotating which goes first, so slow drifts of a shared
    machine's load fall on all of them alike. Returns each variant's seconds per round."""
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            seconds[name].append(variants[name]())
        print("round " + str(round_) + ": " + ", ".join(f"{name} {seconds[name][-1]:.3f} s" for name in names))
    return seconds


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of the per-round ratio: each pair ran back to back, under the same load."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def cpu_timed(work: Callable[[], object]) -> float:
    """CPU seconds ``work`` took in this process and its finished children (DataLoader workers).

    On a CPU shared with other jobs, wall time also counts the neighbours; CPU time does not.
    """

    def now() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return sum(u.ru_utime + u.ru_stime for u in usage)

    started = now()
    work()
    return now() - started


def drain(batches: Iterable) -> None:
    for _ in batches:
        pass


def print_result(**figures: float | int | str) -> None:
    """The last line of every benchmark, read by tests and copied into RESULTS.md."""
    print(
        "RESULT "
        + " ".join(
            f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in figures.items()
        )
    )


def add_loop_arguments(parser: argparse.ArgumentParser, *, rounds: int) -> None:
    """The arguments the loop benchmarks share: the batch they repeat and how often they time it."""
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="batches per timed epoch")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only checks the benchmark works")
