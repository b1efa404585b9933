"""What the benchmarks that train share: a batch served from memory, a model trained an epoch at a time as a
run trains it, and timing on the device they train on."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import torch

from bench.common import cpu_timed
from trainer.config import OptimConfig, ScheduleConfig, TricksConfig
from trainer.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from trainer.loop.engine import train_one_epoch
from trainer.models.build import build_model
from trainer.models.param_groups import build_optimizer
from trainer.tricks.recipe import Tricks
from trainer.tricks.schedules import build_schedule


class RepeatedBatch:
    """One batch already on the device, served ``steps`` times: the model's speed without any loader."""

    def __init__(self, *, batch_size: int, image_size: int, num_classes: int, steps: int, device: torch.device):
        generator = torch.Generator().manual_seed(0)
        mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
        images = (torch.rand(batch_size, 3, image_size, image_size, generator=generator) - mean) / std
        self.images = images.to(device)
        self.targets = torch.randint(num_classes, (batch_size,), generator=generator).to(device)
        self.steps = steps
        self.num_samples = batch_size * steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return iter([(self.images, self.targets)] * self.steps)


class Trainer:
    """A model and its optimizer trained an epoch at a time through ``engine.train_one_epoch``,
    as a run trains it: on CUDA with bf16 autocast and channels_last, Adam with the layer rates."""

    def __init__(self, arch: str, num_classes: int, device: torch.device):
        self.on_cuda = device.type == "cuda"
        model = build_model(arch, num_classes, pretrained=False).to(device)
        self.model = model.to(memory_format=torch.channels_last) if self.on_cuda else model
        self.optimizer = build_optimizer(self.model, OptimConfig())
        self.plain = Tricks(TricksConfig(), seed=0)

    def epoch(self, loader, tricks: Tricks | None = None) -> dict:
        """One epoch with ``tricks`` (none by default), drawing the same mixes each time it is called."""
        tricks = tricks or self.plain
        tricks.set_epoch(1)
        return train_one_epoch(
            model=self.model,
            loader=loader,
            optimizer=self.optimizer,
            schedule=build_schedule(ScheduleConfig(), epochs=1, steps_per_epoch=len(loader)),
            tricks=tricks,
            start_step=0,
            autocast_dtype=torch.bfloat16 if self.on_cuda else None,
            channels_last=self.on_cuda,
        )


def machine() -> str:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    cores = len(os.sched_getaffinity(0))
    return f"{platform.processor() or platform.machine()}, {cores} cores, {gpu}, torch {torch.__version__}"


def timed(work: Callable[[], object]) -> float:
    """Wall seconds of ``work``, with the GPU's queue drained on both ends."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    work()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def loop_timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """How the loop benchmarks time an epoch: wall time on a GPU; on a CPU, CPU seconds of one
    thread (set here), since idle OpenMP threads spinning would count as work."""
    if device.type == "cuda":
        return timed
    torch.set_num_threads(1)
    return cpu_timed


def loop_device() -> tuple[torch.device, Callable[[Callable[[], object]], float]]:
    """The device the loop benchmarks train on and their timer, announced with the machine."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"machine: {machine()}; timing {'wall' if device.type == 'cuda' else 'CPU'} seconds")
    return device, loop_timer(device)
