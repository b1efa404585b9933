"""Train one prepared run folder, from its config to its result.

The folder (``protocol.RunFolder``) is the run's whole state. Starting again on a folder with a
last checkpoint resumes it exactly, and the epochs already done are reported again so a reader that
missed them (a worker that died) still stores each one.

Under torchrun every rank runs ``train_run`` on the same folder (see ``trainer.distributed``): all
of them read the config and the checkpoint and check the attempt fence; rank 0 alone reports and
writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import torch
from torch import nn

from trainer.checkpoint import load_checkpoint, restore_rng_states, rng_states, save_checkpoint
from trainer.config import RunConfig
from trainer.data.cub import make_splits, read_cub
from trainer.data.loaders import BatchSource, BatchSources, build_batch_sources
from trainer.devices import DeviceChoice, choose_device, use_device
from trainer.distributed import (
    World,
    data_parallel,
    describe_devices,
    global_batch_sizes,
    joined,
    synced_batchnorm,
    world_from_environment,
)
from trainer.engine import evaluate, train_one_epoch
from trainer.files import write_atomic
from trainer.models import build_model, load_teacher
from trainer.optim import build_optimizer
from trainer.protocol import AttemptFence, EpochRow, Result, RunFolder, StartInfo, StepEvent
from trainer.reporters import BaseReporter, Reporter
from trainer.tricks.recipe import Tricks
from trainer.tricks.schedules import build_schedule

T = TypeVar("T")


class RunError(Exception):
    """A problem the user can fix; shown as a message, without a traceback."""


def _largest_lr(optimizer: torch.optim.Optimizer) -> float:
    return max(group["lr"] for group in optimizer.param_groups)


def train_run(run_dir: str | Path, *, reporter: Reporter, attempt: int | None = None) -> Result:
    """Train the run folder ``run_dir`` to its result; ``reporter`` hears of it on rank 0 only."""
    folder = RunFolder(Path(run_dir))
    fence = AttemptFence(folder, attempt)
    fence.check()
    if not folder.config.is_file():
        raise RunError(f"{folder.config} not found: a run folder needs its config.json")
    config = RunConfig.load(folder.config)
    return on_devices(
        config,
        lambda world, choice: _train(
            folder,
            fence=fence,
            config=config,
            world=world,
            choice=choice,
            reporter=reporter if world.is_main else BaseReporter(),
        ),
    )


def on_devices(config: RunConfig, work: Callable[[World, DeviceChoice], T]) -> T:
    """``work`` in this process's place among the ranks, on its device (made current first), while the
    process group is joined."""
    world = world_from_environment()
    config.rank_batch_size(world.size)  # a batch that does not divide over the ranks fails here, by name
    choice = choose_device(config.runtime.device, world)
    use_device(choice.device)
    with joined(world, choice.device):
        return work(world, choice)


def _train(
    folder: RunFolder,
    *,
    fence: AttemptFence,
    config: RunConfig,
    world: World,
    choice: DeviceChoice,
    reporter: Reporter,
) -> Result:
    device = choice.device
    training = prepare_training(config, world=world, device=device)
    sources, model, optimizer, tricks = training.sources, training.model, training.optimizer, training.tricks
    autocast_dtype, channels_last = training.autocast_dtype, training.channels_last
    num_classes, steps_per_epoch = training.num_classes, training.steps_per_epoch
    schedule = build_schedule(config.schedule, epochs=config.epochs, steps_per_epoch=steps_per_epoch)

    progress = _Progress()
    if folder.last_checkpoint.exists():  # every rank resumes from the same one
        progress = resume(folder.last_checkpoint, config=config, model=model, optimizer=optimizer)
    fence.check()
    if world.is_main:
        # What a crashed attempt appended after its last checkpoint goes: those epochs are trained again.
        write_atomic(folder.metrics, "".join(json.dumps(row) + "\n" for row in progress.history))

    reporter.start(
        StartInfo(
            epochs=config.epochs,
            steps_per_epoch=steps_per_epoch,
            start_epoch=progress.epoch,
            num_train=sources.train.num_samples,
            num_valid=sources.valid.num_samples,
            num_test=sources.test.num_samples,
            num_classes=num_classes,
            device=str(device),
            world_size=world.size,
            devices=describe_devices(world, device),
            fallback=choice.fallback,
            history=progress.history,
        )
    )

    step_log = _StepLog(every=config.runtime.step_log_every, steps_per_epoch=steps_per_epoch, world=world)

    def on_step(step: int, loss: torch.Tensor) -> None:
        reporter.batch(step)
        step_log.add(step, loss, _largest_lr(optimizer))

    for epoch in range(progress.epoch + 1, config.epochs + 1):
        sources.train.set_epoch(epoch)
        tricks.set_epoch(epoch)
        train = train_one_epoch(
            model=training.step_model,
            loader=sources.train,
            optimizer=optimizer,
            schedule=schedule,
            tricks=tricks,
            start_step=(epoch - 1) * steps_per_epoch,
            autocast_dtype=autocast_dtype,
            channels_last=channels_last,
            on_step=on_step,
            world=world,
            global_sizes=training.global_sizes,
        )
        for event in step_log.drain():
            reporter.step(event)
        world.share_buffers(model)
        valid = evaluate(
            model=training.eval_model,
            loader=sources.valid,
            autocast_dtype=autocast_dtype,
            channels_last=channels_last,
            world=world,
        )
        row = EpochRow(
            epoch=epoch,
            train_loss=train["train_loss"],
            train_top1=train["train_top1"],
            train_top5=train["train_top5"],
            valid_loss=valid["loss"],
            valid_top1=valid["top1"],
            valid_top5=valid["top5"],
            lr=_largest_lr(optimizer),
            seconds=train["seconds"],
            images_per_s=train["images"] / max(train["seconds"], 1e-9),
        )
        if tricks.distils:
            row["train_task_loss"] = train["train_task_loss"]
            row["train_kd_loss"] = train["train_kd_loss"]
        # Where the epoch's time went, as far as this device measures it (trainer.telemetry).
        if "data_wait_share" in train:
            row["data_wait_share"] = train["data_wait_share"]
        if "peak_memory_bytes" in train:
            row["peak_memory_bytes"] = round(train["peak_memory_bytes"])
        if "gpu_utilization" in train:
            row["gpu_utilization"] = train["gpu_utilization"]
        fence.check()
        progress.record(row)
        if world.is_main:
            _save_checkpoints(
                folder,
                model=model,
                optimizer=optimizer,
                config=config,
                progress=progress,
                valid=valid,
                epoch=epoch,
                steps_per_epoch=steps_per_epoch,
                num_classes=num_classes,
            )
            with folder.metrics.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
        reporter.epoch(row)

    world.barrier()  # rank 0 has written the best checkpoint every rank now tests
    result = _test_best(
        folder,
        model=model,
        sources_test=sources.test,
        progress=progress,
        autocast_dtype=autocast_dtype,
        channels_last=channels_last,
        world=world,
    )
    fence.check()
    if world.is_main:
        write_atomic(folder.result, json.dumps(result, indent=2) + "\n")
    reporter.result(result)
    return result


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


def _save_checkpoints(
    folder: RunFolder,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: RunConfig,
    progress: _Progress,
    valid: dict[str, float],
    epoch: int,
    steps_per_epoch: int,
    num_classes: int,
) -> None:
    """The best checkpoint when ``epoch`` is the best so far, and the last one, which a new attempt resumes."""
    if progress.best_epoch == epoch:
        save_checkpoint(
            folder.best_checkpoint,
            {
                "model": model.state_dict(),
                "epoch": epoch,
                "num_classes": num_classes,
                "config": config.model_dump(mode="json"),
                "valid": valid,
            },
        )
    save_checkpoint(
        folder.last_checkpoint,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "step": epoch * steps_per_epoch,
            "history": progress.history,
            "num_classes": num_classes,
            "config": config.model_dump(mode="json"),
            "fingerprint": config.fingerprint(),
            "rng": rng_states(),
        },
    )


class _StepLog:
    """Sparse per-step loss and learning rate, read back from the device once per epoch.

    A ``.item()`` at each logged step would stall the GPU; the losses wait on the device instead.
    Each rank logs its contribution to the global batch's mean loss; ``drain`` sums them over ranks
    (every rank drains at the same step, so the sum is one all-reduce per epoch).
    """

    def __init__(self, *, every: int, steps_per_epoch: int, world: World):
        self.every = every
        self.steps_per_epoch = steps_per_epoch
        self.world = world
        self.pending: list[tuple[int, torch.Tensor, float]] = []

    def add(self, step: int, loss: torch.Tensor, lr: float) -> None:
        done = step + 1
        if done % self.every == 0:
            self.pending.append((done, loss, lr))

    def drain(self) -> list[StepEvent]:
        if not self.pending:
            return []
        losses = self.world.all_sum(torch.stack([loss for _, loss, _ in self.pending])).tolist()
        events = [
            StepEvent(epoch=(done - 1) // self.steps_per_epoch + 1, step=done, loss=loss, lr=lr)
            for (done, _, lr), loss in zip(self.pending, losses, strict=True)
        ]
        self.pending = []
        return events


class _Progress:
    """Epoch rows so far and the best epoch by validation loss (the checkpoint the report kept)."""

    def __init__(self, history: list[EpochRow] | None = None):
        self.history: list[EpochRow] = []
        self.best_epoch = 0
        for row in history or []:
            self.record(row)

    @property
    def epoch(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0

    def record(self, row: EpochRow) -> None:
        self.history.append(row)
        best = self.best_row
        if best is None or row["valid_loss"] < best["valid_loss"]:
            self.best_epoch = row["epoch"]

    @property
    def best_row(self) -> EpochRow | None:
        return self.history[self.best_epoch - 1] if self.best_epoch else None


def resume(path: Path, *, config: RunConfig, model: nn.Module, optimizer: torch.optim.Optimizer) -> _Progress:
    """Model, optimizer and random states from the last checkpoint ``path``; the epochs it holds.

    The file is read onto the CPU and each part moves only where it belongs: the weights and the
    optimizer's moments to their parameters' device, while Adam's ``step`` counters stay on the CPU
    (Adam reads them with ``.item()`` every step: on a GPU that is a host sync per parameter) and the
    generator states are set from CPU tensors, as ``torch.set_rng_state`` needs.
    """
    state = load_checkpoint(path)
    if state.get("fingerprint") != config.fingerprint():
        raise RunError(f"{path} was written by a different configuration; start the changed config in a new run folder")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    restore_rng_states(state["rng"])
    return _Progress(state["history"])


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


def _test_best(
    folder: RunFolder,
    *,
    model: nn.Module,
    sources_test: BatchSource,
    progress: _Progress,
    autocast_dtype: torch.dtype | None,
    channels_last: bool,
    world: World,
) -> Result:
    model.load_state_dict(load_checkpoint(folder.best_checkpoint)["model"])
    test = evaluate(
        model=model, loader=sources_test, autocast_dtype=autocast_dtype, channels_last=channels_last, world=world
    )
    best_row = progress.best_row
    assert best_row is not None, "epochs >= 1, so at least one epoch was recorded"
    return Result(
        test_loss=test["loss"],
        test_top1=test["top1"],
        test_top5=test["top5"],
        best_epoch=progress.best_epoch,
        best_valid_loss=best_row["valid_loss"],
        best_valid_top1=best_row["valid_top1"],
        best_valid_top5=best_row["valid_top5"],
        # The report's table quotes the highest validation accuracy seen in any epoch.
        max_valid_top1=max(row["valid_top1"] for row in progress.history),
        max_valid_top5=max(row["valid_top5"] for row in progress.history),
    )
