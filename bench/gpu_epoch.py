"""ResNet50 training speed on a GPU: from memory, through the fast path and the reference pipeline.

Everything runs as tricklab trains on CUDA (bf16 autocast, channels_last, ``cudnn.benchmark``, Adam
with the report's layer rates, ``engine.train_one_epoch``). It reports:
- ResNet50 training images/s at batch 64 and 256, on one batch already in GPU memory, through the
  fast path (cache on the GPU, a fresh augmentation per batch) and through the reference PIL
  pipeline (``--workers`` DataLoader workers), with the fast/memory ratio;
- the same at batch 64 with ``runtime.compile`` (the step compiled for its one static shape), and
  the compile seconds (not under --smoke: compiling takes minutes on a CPU);
- ResNet152 inference images/s, the KD teacher's cost per image;
- optionally (``--run-epochs``) the wall time of a whole run through ``trainer.loop.run.train_run``.

Every side is timed alike: the same untimed warm-up steps from the same iterator (cuDNN's kernel
search, the allocator, a loader's workers and its epoch plan), then the same number of full batches
(no last partial batch), timed in wall seconds with the GPU's queue drained at both ends. The data
is a generated dataset of CUB's size and resolution: 200 classes x 59 JPEGs of 500x375 / 375x500.
Targets on an H200: >= 2,500 images/s at batch 64 through the fast path, >= 90% of the in-memory rate.

    python -m bench.gpu_epoch           # needs a GPU; about two minutes
    python -m bench.gpu_epoch --smoke   # any machine, seconds: checks that it runs
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from bench.common import print_result, replicated_dataset
from bench.training import RepeatedBatch, Trainer, machine, timed
from trainer.config import RunConfig
from trainer.data.cub import read_cub
from trainer.data.dataset import make_splits
from trainer.data.loaders import build_batch_sources
from trainer.loop.reporters import BaseReporter
from trainer.loop.run import train_run
from trainer.models.build import build_model


class Take:
    """The next ``count`` batches of ``batches``, as a sized loader for ``train_one_epoch``."""

    def __init__(self, batches: Iterator[tuple[Tensor, Tensor]], count: int):
        self.batches, self.count = batches, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for _ in range(self.count):
            yield next(self.batches)


def train_rate(trainer: Trainer, batches: Iterator[tuple[Tensor, Tensor]], *, warmup: int, steps: int) -> float:
    """Images/s over ``steps`` full batches of ``batches``, after ``warmup`` untimed ones."""
    trainer.epoch(Take(batches, warmup))
    timed_batches = Take(batches, steps)
    images = 0

    def run() -> None:
        nonlocal images
        images = int(trainer.epoch(timed_batches)["images"])

    seconds = timed(run)
    return images / seconds


def source_batches(config: RunConfig, *, index, splits, device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    """The train batches of ``config``'s pipeline, epoch after epoch, as a run draws them."""
    sources = build_batch_sources(config, index=index, splits=splits, device=device)
    epoch = 0
    while True:
        epoch += 1
        sources.train.set_epoch(epoch)
        yield from sources.train


@torch.inference_mode()
def inference_rate(arch: str, *, batch_size: int, image_size: int, steps: int, device: torch.device) -> float:
    on_cuda = device.type == "cuda"
    model = build_model(arch, 200, pretrained=False).to(device).eval()
    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    if on_cuda:
        model, images = (
            model.to(memory_format=torch.channels_last),
            images.contiguous(memory_format=torch.channels_last),
        )

    def run(count: int) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_cuda):
            for _ in range(count):
                model(images)

    run(max(1, steps // 5))
    return batch_size * steps / timed(lambda: run(steps))


def compiled_figures(
    arch: str,
    batch_size: int,
    *,
    config: RunConfig,
    index,
    splits,
    device: torch.device,
    warmup: int,
    steps: int,
    eager_rate: float,
) -> dict[str, float]:
    """The fast path's rate with the step compiled as ``runtime.compile`` does it, and the compile seconds."""
    count = min(steps, len(splits.train) // batch_size - warmup)
    compiled = Trainer(arch, len(index.classes), device)
    # As trainer.loop.run._compiled does: one graph for the one static shape.
    compiled.model = cast(nn.Module, torch.compile(compiled.model, dynamic=False))
    batches = source_batches(config, index=index, splits=splits, device=device)
    compile_s = timed(lambda: compiled.epoch(Take(batches, 1)))
    rate = train_rate(compiled, batches, warmup=warmup, steps=count)
    print(f"runtime.compile: {compile_s:.1f} s to compile, then {rate:.0f} images/s ({rate / eager_rate:.2f}x eager)")
    return {
        f"train_b{batch_size}_fast_compiled_img_s": rate,
        "compiled_vs_eager": rate / eager_rate,
        "compile_s": compile_s,
    }


def run_seconds(config: RunConfig) -> tuple[float, float]:
    """Wall seconds of a whole run of ``config`` and its median train epoch."""
    with tempfile.TemporaryDirectory(prefix="tricklab-gpu-epoch-") as run_dir:
        config.save(Path(run_dir) / "config.json")
        seconds = timed(lambda: train_run(run_dir, reporter=BaseReporter()))
        rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return seconds, statistics.median(row["seconds"] for row in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny models and data on any device")
    parser.add_argument("--workers", type=int, default=16, help="the reference pipeline's DataLoader workers")
    parser.add_argument("--run-epochs", type=int, default=10, help="epochs of the whole run timed at the end (0: none)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the runtime.compile figures")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch_sizes: tuple[int, ...]
    if args.smoke:
        arch, teacher, size, batch_sizes, steps, warmup = "resnet18", "resnet18", 32, (4,), 2, 1
        shape = {"classes": 4, "per_class": 6, "distinct_per_class": 2}
        args.workers, args.run_epochs = 0, min(args.run_epochs, 1)
    else:
        if device.type != "cuda":
            raise SystemExit("bench.gpu_epoch needs a GPU; use --smoke to check it elsewhere")
        arch, teacher, size, batch_sizes, steps, warmup = "resnet50", "resnet152", 224, (64, 256), 40, 5
        shape = {"classes": 200, "per_class": 59, "distinct_per_class": 3}
    # As a run on CUDA does (trainer.loop.run): one kernel search per shape, and every timed batch is full.
    torch.backends.cudnn.benchmark = device.type == "cuda"
    print(f"machine: {machine()}")
    root = replicated_dataset(**shape)
    index = read_cub(root)
    splits = make_splits(index, split="seed")
    print(f"dataset: {len(index.samples)} JPEGs under {root}, {len(splits.train)} train")

    def config(batch_size: int, pipeline: str = "fast", **runtime: object) -> RunConfig:
        return RunConfig.from_dict(
            {
                "name": "gpu-epoch-bench",
                "epochs": max(args.run_epochs, 1),
                "batch_size": batch_size,
                "data": {"root": str(root), "image_size": size, "pipeline": pipeline, "num_workers": args.workers},
                "model": {"arch": arch, "pretrained": False},
                "runtime": runtime,
            }
        )

    figures: dict[str, float] = {}
    for batch_size in batch_sizes:
        # Every side times the same count of full batches, all from one epoch of the split.
        count = min(steps * 64 // batch_size or 1, len(splits.train) // batch_size - warmup)
        if count < 1:
            raise SystemExit(f"batch {batch_size} leaves no full batch to time in {len(splits.train)} train images")
        trainer = Trainer(arch, len(index.classes), device)
        in_memory = RepeatedBatch(
            batch_size=batch_size, image_size=size, num_classes=len(index.classes), steps=1, device=device
        )
        rates = {
            "memory": train_rate(
                trainer, itertools.repeat((in_memory.images, in_memory.targets)), warmup=warmup, steps=count
            ),
            "fast": train_rate(
                trainer,
                source_batches(config(batch_size, compile=False), index=index, splits=splits, device=device),
                warmup=warmup,
                steps=count,
            ),
        }
        reference = source_batches(config(batch_size, "reference"), index=index, splits=splits, device=device)
        rates["reference"] = train_rate(trainer, reference, warmup=warmup, steps=count)
        print(
            f"{arch} train batch {batch_size}, {count} timed steps: in memory {rates['memory']:.0f} images/s, "
            f"fast path {rates['fast']:.0f} ({100 * rates['fast'] / rates['memory']:.1f}%), "
            f"reference pipeline with {args.workers} workers {rates['reference']:.0f}"
        )
        figures |= {f"train_b{batch_size}_{side}_img_s": rate for side, rate in rates.items()}
        figures[f"fast_vs_memory_b{batch_size}"] = rates["fast"] / rates["memory"]
        del trainer

    if not (args.smoke or args.no_compile):  # compiling takes minutes on a CPU
        figures |= compiled_figures(
            arch,
            batch_sizes[0],
            config=config(batch_sizes[0], compile=True),
            index=index,
            splits=splits,
            device=device,
            warmup=warmup,
            steps=steps,
            eager_rate=figures[f"train_b{batch_sizes[0]}_fast_img_s"],
        )
    figures["teacher_infer_img_s"] = inference_rate(
        teacher, batch_size=batch_sizes[-1], image_size=size, steps=steps, device=device
    )
    print(f"{teacher} inference batch {batch_sizes[-1]}: {figures['teacher_infer_img_s']:.0f} images/s")

    if args.run_epochs:
        whole = config(batch_size)
        figures["run_s"], figures["epoch_s"] = run_seconds(whole)
        print(f"{args.run_epochs}-epoch {arch} run: {figures['run_s']:.1f} s, median epoch {figures['epoch_s']:.1f} s")
    print_result(**figures)


if __name__ == "__main__":
    main()
