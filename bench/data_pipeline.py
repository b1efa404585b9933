"""JPEG files to normalized, augmented train batches: the fast path against the report's pipeline.

Both run in this process on the same generated CUB-like dataset (500x375 and 375x500 JPEGs) at the
same image size, epochs alternating. The reference gets ``--workers`` DataLoader processes; the fast
path gets as many torch threads. The fast path's one-time costs (cache build, kernel compile) are
reported apart from its per-epoch rate.

    python -m bench.data_pipeline            # 768 images at 224 px, 3 epochs of each
    python -m bench.data_pipeline --smoke    # seconds, for the test suite
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from statistics import median

import torch

from bench.common import cublike_dataset, drain, machine, print_result, timed
from trainer.data.cache import load_or_build
from trainer.data.cub import CubDataset, read_cub
from trainer.data.fast import FastBatchSource
from trainer.data.loaders import ReferenceBatchSource
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
    print(f"dataset: {len(indices)} JPEGs under {root}; image size {args.image_size}, batch {args.batch_size}, "
          f"{args.workers} workers / threads")

    cache_dir = Path(tempfile.mkdtemp(prefix="tricklab-bench-cache-"))
    try:
        packed = None

        def build() -> None:
            nonlocal packed
            packed = load_or_build([index.samples[i].path for i in indices], root=index.root, kind="train",
                                   image_size=args.image_size, cache_dir=cache_dir)

        build_seconds = timed(build)
        print(f"cache build: {build_seconds:.2f} s, {len(indices) / build_seconds:.0f} images/s "
              f"({packed.pixels.numel() / 2**20:.0f} MiB)")
        torch.set_num_threads(args.workers)
        fast = FastBatchSource(packed, [index.samples[i].label for i in indices], train=True,
                               image_size=args.image_size, batch_size=args.batch_size, device=device, seed=0,
                               compile=not args.no_compile)
        reference = ReferenceBatchSource(dataset=CubDataset(index, indices, train_transform(args.image_size)),
                                         batch_size=args.batch_size, shuffle=True, device=device, seed=0,
                                         num_workers=args.workers)
        warmup_seconds = timed(lambda: drain(fast))  # compiles the kernel (once per batch shape)
        print(f"fast warm-up epoch (compile): {warmup_seconds:.2f} s")

        rates: dict[str, list[float]] = {"reference": [], "fast": []}
        for epoch in range(args.epochs):
            for name, source in (("reference", reference), ("fast", fast)):
                source.set_epoch(epoch)
                rate = len(indices) / timed(lambda: drain(source))
                rates[name].append(rate)
                print(f"epoch {epoch} {name:9s} {rate:8.0f} images/s")
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    reference_rate, fast_rate = median(rates["reference"]), median(rates["fast"])
    print(f"median: reference {reference_rate:.0f} images/s, fast {fast_rate:.0f} images/s, "
          f"speedup {fast_rate / reference_rate:.2f}x")
    print_result(reference_img_s=reference_rate, fast_img_s=fast_rate, speedup=fast_rate / reference_rate,
                 build_img_s=len(indices) / build_seconds, compile_s=warmup_seconds)


if __name__ == "__main__":
    main()
