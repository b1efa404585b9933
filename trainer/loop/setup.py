"""Everything a run trains with, prepared from its config on this rank's device: the dataset and its
batch sources, the model (the same initial weights on every rank), the teacher, the tricks and the
optimizer. A run (``trainer.loop.run``) and an LR range test of its config (``trainer.lr_finder``) both
start here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import torch
from torch import nn

from trainer.config import RunConfig
from trainer.data.cub import read_cub
from trainer.data.dataset import make_splits
from trainer.data.loaders import BatchSources, build_batch_sources
from trainer.loop.teacher import load_teacher
from trainer.models.build import build_model
from trainer.models.param_groups import build_optimizer
from trainer.parallel.devices import DeviceChoice, choose_device, use_device
from trainer.parallel.distributed import (
    World,
    data_parallel,
    global_batch_sizes,
    joined,
    synced_batchnorm,
    world_from_environment,
)
from trainer.tricks.recipe import Tricks

T = TypeVar("T")


class RunError(Exception):
    """A problem the user can fix; shown as a message, without a traceback."""


def on_devices(config: RunConfig, work: Callable[[World, DeviceChoice], T]) -> T:
    """``work`` in this process's place among the ranks, on its device (made current first), while the
    process group is joined."""
    world = world_from_environment()
    config.rank_batch_size(world.size)  # a batch that does not divide over the ranks fails here, by name
    choice = choose_device(config.runtime.device, world)
    use_device(choice.device)
    with joined(world, choice.device):
        return work(world, choice)


@dataclass
class Training:
    """What the loop trains with: the data, the model (bare, and as each step and evaluation call it),
    the tricks, the optimizer with the config's layer-wise rates, and how batches are cast."""

    sources: BatchSources
    num_classes: int
    model: nn.Module
    step_model: nn.Module  # DDP over the ranks (and compiled) where that applies
    eval_model: nn.Module
    tricks: Tricks
    optimizer: torch.optim.Optimizer
    global_sizes: list[int] | None  # the global batches' sizes, when each rank trains a part of them
    autocast_dtype: torch.dtype | None
    channels_last: bool

    @property
    def steps_per_epoch(self) -> int:
        return len(self.sources.train)


def prepare_training(config: RunConfig, *, world: World, device: torch.device) -> Training:
    """The dataset read, the model built (the same initial weights on every rank), the teacher loaded:
    everything a run, or an LR range test of its config, trains with."""
    on_cuda = device.type == "cuda"
    if on_cuda:
        # cuDNN searches the fastest kernels once per input shape. A run has a handful: the full batch,
        # the last (shorter) batch of each split, and with runtime.compile only the full train batch.
        torch.backends.cudnn.benchmark = True
    autocast_dtype = torch.bfloat16 if on_cuda and config.runtime.amp else None
    channels_last = on_cuda and config.runtime.channels_last

    index = read_cub(config.data.root)
    splits = make_splits(
        index, split=config.data.split, valid_fraction=config.data.valid_fraction, split_seed=config.data.split_seed
    )
    sources = build_batch_sources(config, index=index, splits=splits, device=device, world=world)
    num_classes = len(index.classes)

    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = build_model(
        config.model.arch,
        num_classes,
        pretrained=config.model.pretrained,
        weights_path=config.model.weights_path,
        zero_init_residual=config.model.zero_init_residual,
    )
    if config.runtime.sync_batchnorm:
        model = synced_batchnorm(model, world=world, device=device)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    teacher = _load_teacher(config, num_classes=num_classes, device=device, channels_last=channels_last)
    steps_per_epoch = len(sources.train)
    if steps_per_epoch == 0:
        raise RunError(
            f"runtime.compile trains on full batches only, and batch_size {config.batch_size} is more than the "
            f"{sources.train.num_samples} training images: lower batch_size or turn runtime.compile off"
        )
    # Each rank's part of each global batch is weighted by its share (see train_one_epoch); with
    # runtime.compile the last, partial one is not trained.
    global_sizes = (
        global_batch_sizes(sources.train.num_samples, config.batch_size)[:steps_per_epoch]
        if world.distributed
        else None
    )
    return Training(
        sources=sources,
        num_classes=num_classes,
        model=model,
        step_model=_compiled(data_parallel(model, world=world, device=device), config),
        # Evaluation runs eagerly on the bare module: DDP would make ranks wait for each other at every
        # batch, and a compiled model would compile again for eval mode and for each split's last batch.
        eval_model=model,
        tricks=Tricks(config.tricks, seed=config.seed, teacher=teacher),
        optimizer=build_optimizer(model, config.optim, lr_scale=config.lr_scale),
        global_sizes=global_sizes,
        autocast_dtype=autocast_dtype,
        channels_last=channels_last,
    )


def _compiled(model: nn.Module, config: RunConfig) -> nn.Module:
    """The training step's module, compiled once for the one shape it sees (see RuntimeConfig.compile)."""
    if not config.runtime.compile:
        return model
    # Static shapes: every train batch is full, so a dynamic-shape graph would only be slower.
    # torch.compile is typed as returning a plain callable; given a module it returns a module (OptimizedModule).
    return cast(nn.Module, torch.compile(model, dynamic=False))


def _load_teacher(config: RunConfig, *, num_classes: int, device: torch.device, channels_last: bool):
    teacher_ref = config.tricks.kd.teacher
    if teacher_ref is None:
        return None
    if isinstance(teacher_ref, int):
        raise RunError(
            f"tricks.kd.teacher is run id {teacher_ref}: only the dashboard can resolve run ids; "
            "give the teacher's run folder instead"
        )
    teacher = load_teacher(teacher_ref, num_classes=num_classes, device=device)
    return teacher.to(memory_format=torch.channels_last) if channels_last else teacher
