"""JPEG files to normalized, augmented train batches: the fast path against the report's pipeline.

Both run in this process on the same generated CUB-like dataset (500x375 and 375x500 JPEGs) at the
same image size, epochs alternating. The reference gets ``--workers`` DataLoader processes; the fast
path gets as many torch threads. On a CPU the fast path's augmentation runs fused by torch.compile
(``runtime.compile``; one pass over the output instead of one per eager op) and, for comparison,
eagerly. ``speedup`` is the median over rounds of reference time / fused fast time; ``cpu_speedup``
the same in CPU seconds of this process and its loader workers, which a busy shared machine's
other jobs do not enter. One-time costs (cache build, kernel compile) are reported apart.

    python -m bench.data_pipeline            # 768 images at 224 px, 3 epochs of each
    python -m bench.data_pipeline --smoke    # seconds, for the test suite
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path
from statistics import median

import torch

from bench.common import alternate, cpu_timed, cublike_dataset, drain, paired_ratio, print_result
from bench.training import machine, timed
from trainer.data.cache import load_or_build
from trainer.data.cub import read_cub
from trainer.data.dataset import CubDataset
from trainer.data.fast import FastBatchSource
from trainer.data.loaders import BatchSource, ReferenceBatchSource
from trainer.data.transforms import train_transform


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=16)
    parser.add_argument("--per-class", type=int, default=48)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs of each pipeline, alternating")
    parser.add_argument("--no-compile", action="store_true", help="run the fast path's augmentation eagerly")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only checks the benchmark works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.classes, args.per_class, args.image_size, args.batch_size, args.epochs = 2, 8, 64, 8, 1
        args.no_compile = True

    root = cublike_dataset(classes=args.classes, per_class=args.per_class)
    index = read_cub(root)
    indices = list(range(len(index.samples)))
    device = torch.device("cpu")
    print(f"machine: {machine()}")
    print(
        f"dataset: {len(indices)} JPEGs under {root}; image size {args.image_size}, batch {args.batch_size}, "
        f"{args.workers} workers / threads"
    )

    with tempfile.TemporaryDirectory(prefix="tricklab-bench-cache-") as cache_dir:
        started = time.perf_counter()
        packed = load_or_build(
            [index.samples[i].path for i in indices],
            root=index.root,
            kind="train",
            image_size=args.image_size,
            cache_dir=Path(cache_dir),
        )
        build_seconds = time.perf_counter() - started
        print(
            f"cache build: {build_seconds:.2f} s, {len(indices) / build_seconds:.0f} images/s "
            f"({packed.pixels.numel() / 2**20:.0f} MiB)"
        )
        torch.set_num_threads(args.workers)
        labels = [index.samples[i].label for i in indices]
        fast_source = partial(
            FastBatchSource,
            packed,
            labels,
            train=True,
            image_size=args.image_size,
            batch_size=args.batch_size,
            device=device,
            seed=0,
        )
        sources: dict[str, BatchSource] = {
            "reference": ReferenceBatchSource(
                dataset=CubDataset(index, indices, train_transform(args.image_size)),
                batch_size=args.batch_size,
                shuffle=True,
                device=device,
                seed=0,
                num_workers=args.workers,
            ),
            "fast": fast_source(compile=not args.no_compile),
            "fast_eager": fast_source(),
        }
        compile_seconds = timed(lambda: drain(sources["fast"]))  # the first epoch compiles the kernel
        print(f"fast path's first epoch (kernel compile): {compile_seconds:.2f} s")
        cpu_seconds: dict[str, list[float]] = {name: [] for name in sources}

        def epoch(name: str) -> float:  # wall seconds; CPU seconds go to cpu_seconds
            return timed(lambda: cpu_seconds[name].append(cpu_timed(lambda: drain(sources[name]))))

        seconds = alternate({name: partial(epoch, name) for name in sources}, args.epochs)

    rates = {name: len(indices) / median(times) for name, times in seconds.items()}
    speedup = paired_ratio(seconds["reference"], seconds["fast"])
    speedup_eager = paired_ratio(seconds["reference"], seconds["fast_eager"])
    print("median images/s: " + ", ".join(f"{name} {rate:.0f}" for name, rate in rates.items()))
    cpu_speedup = paired_ratio(cpu_seconds["reference"], cpu_seconds["fast"])
    print(
        f"speedup over the reference: {speedup:.2f}x fused, {speedup_eager:.2f}x eager "
        f"(in CPU seconds per image, workers included: {cpu_speedup:.2f}x fused)"
    )
    print_result(
        reference_img_s=rates["reference"],
        fast_img_s=rates["fast"],
        speedup=speedup,
        fast_eager_img_s=rates["fast_eager"],
        speedup_eager=speedup_eager,
        cpu_speedup=cpu_speedup,
        build_img_s=len(indices) / build_seconds,
        compile_s=compile_seconds,
    )


if __name__ == "__main__":
    main()
