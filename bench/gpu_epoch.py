"""ResNet50 training speed on a GPU: from memory, through the fast path, and a whole 10-epoch run.

Everything runs as tricklab trains on CUDA (bf16 autocast, channels_last, Adam with the report's
layer rates, ``engine.train_one_epoch``). It reports:
- ResNet50 training images/s at batch 64 and 256, on one batch already in GPU memory and through
  the fast path (cache on the GPU, a fresh augmentation per batch), with the fast/memory ratio;
- ResNet152 inference images/s, the KD teacher's cost per image;
- the wall time of a 10-epoch ResNet50 run through ``trainer.run.train_run`` (cache build,
  validation, checkpoints and the test pass included) on a generated dataset of CUB's size and
  resolution: 200 classes x 59 JPEGs of 500x375 / 375x500.
Targets on an H200: >= 2,500 images/s at batch 64 through the fast path, >= 90% of the in-memory rate.

    python -m bench.gpu_epoch           # needs a GPU; a few minutes
    python -m bench.gpu_epoch --smoke   # any machine, seconds: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from bench.common import RepeatedBatch, Trainer, machine, print_result, replicated_dataset, timed
from trainer.config import RunConfig
from trainer.data.cache import cache_dir
from trainer.data.cub import make_splits, read_cub
from trainer.data.fast import build_fast_source
from trainer.models import build_model
from trainer.reporters import BaseReporter
from trainer.run import train_run


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny models and data on any device")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch_sizes: tuple[int, ...]
    if args.smoke:
        arch, teacher, size, batch_sizes, steps, epochs = "resnet18", "resnet18", 32, (16,), 1, 1
        shape = {"classes": 4, "per_class": 4, "distinct_per_class": 2}
    else:
        if device.type != "cuda":
            raise SystemExit("bench.gpu_epoch needs a GPU; use --smoke to check it elsewhere")
        arch, teacher, size, batch_sizes, steps, epochs = "resnet50", "resnet152", 224, (64, 256), 60, 10
        shape = {"classes": 200, "per_class": 59, "distinct_per_class": 3}
    print(f"machine: {machine()}")
    root = replicated_dataset(**shape)
    index = read_cub(root)
    splits = make_splits(index, split="seed")
    print(f"dataset: {len(index.samples)} JPEGs under {root}, {len(splits.train)} train")

    figures: dict[str, float] = {}
    for batch_size in batch_sizes:
        trainer = Trainer(arch, len(index.classes), device)
        in_memory = RepeatedBatch(
            batch_size=batch_size, image_size=size, num_classes=len(index.classes), steps=steps, device=device
        )
        trainer.images_per_second(in_memory)  # warm-up: cuDNN algorithm choice, allocator
        memory_rate = trainer.images_per_second(in_memory)
        fast = build_fast_source(
            index=index,
            indices=splits.train,
            train=True,
            image_size=size,
            batch_size=batch_size,
            device=device,
            seed=0,
            cache_dir=cache_dir(root),
        )
        fast_rate = trainer.images_per_second(fast)
        print(
            f"{arch} train batch {batch_size}: in memory {memory_rate:.0f} images/s, "
            f"fast path {fast_rate:.0f} images/s ({100 * fast_rate / memory_rate:.1f}%)"
        )
        figures |= {
            f"train_b{batch_size}_memory_img_s": memory_rate,
            f"train_b{batch_size}_fast_img_s": fast_rate,
            f"fast_vs_memory_b{batch_size}": fast_rate / memory_rate,
        }
        del trainer
    figures["teacher_infer_img_s"] = inference_rate(
        teacher, batch_size=batch_sizes[-1], image_size=size, steps=steps, device=device
    )
    print(f"{teacher} inference batch {batch_sizes[-1]}: {figures['teacher_infer_img_s']:.0f} images/s")

    with tempfile.TemporaryDirectory(prefix="tricklab-gpu-epoch-") as run_dir:
        config = RunConfig.from_dict(
            {
                "name": "gpu-epoch-bench",
                "epochs": epochs,
                "batch_size": batch_sizes[0],
                "data": {"root": str(root), "image_size": size, "pipeline": "fast"},
                "model": {"arch": arch, "pretrained": False},
            }
        )
        config.save(Path(run_dir) / "config.json")
        run_seconds = timed(lambda: train_run(run_dir, reporter=BaseReporter()))
        rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    epoch_seconds = statistics.median(row["seconds"] for row in rows)
    print(
        f"{epochs}-epoch {arch} run: {run_seconds:.1f} s in all, median train epoch {epoch_seconds:.1f} s "
        f"({statistics.median(row['images_per_s'] for row in rows):.0f} images/s)"
    )
    print_result(**figures, run_s=run_seconds, epoch_s=epoch_seconds)


if __name__ == "__main__":
    main()
