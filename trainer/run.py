"""Train one prepared run folder, from its config to its result.

The folder (``protocol.RunFolder``) is the run's whole state. Starting again on a folder with a
last checkpoint resumes it exactly, and the epochs already done are reported again so a reader that
missed them (a worker that died) still stores each one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import torch
from torch import nn

from trainer.checkpoint import load_checkpoint, restore_rng_states, rng_states, save_checkpoint
from trainer.config import RunConfig
from trainer.data.cub import make_splits, read_cub
from trainer.data.loaders import BatchSource, build_batch_sources
from trainer.engine import evaluate, train_one_epoch
from trainer.files import write_atomic
from trainer.models import build_model, load_teacher
from trainer.optim import build_optimizer
from trainer.protocol import AttemptFence, EpochRow, Result, RunFolder, StartInfo, StepEvent
from trainer.reporters import Reporter
from trainer.tricks.recipe import Tricks
from trainer.tricks.schedules import build_schedule


class RunError(Exception):
    """A problem the user can fix; shown as a message, without a traceback."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RunError(f"runtime.device is {name!r} but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device(name)


def _largest_lr(optimizer: torch.optim.Optimizer) -> float:
    return max(group["lr"] for group in optimizer.param_groups)


def train_run(run_dir: str | Path, *, reporter: Reporter, attempt: int | None = None) -> Result:
    folder = RunFolder(Path(run_dir))
    fence = AttemptFence(folder, attempt)
    fence.check()
    if not folder.config.is_file():
        raise RunError(f"{folder.config} not found: a run folder needs its config.json")
    config = RunConfig.load(folder.config)
    device = resolve_device(config.runtime.device)
    on_cuda = device.type == "cuda"
    if on_cuda:
        # Every batch has the same shape, so cuDNN's one-off search for the fastest kernels pays off.
        torch.backends.cudnn.benchmark = True
    autocast_dtype = torch.bfloat16 if on_cuda and config.runtime.amp else None
    channels_last = on_cuda and config.runtime.channels_last

    index = read_cub(config.data.root)
    splits = make_splits(
        index, split=config.data.split, valid_fraction=config.data.valid_fraction, split_seed=config.data.split_seed
    )
    sources = build_batch_sources(config, index=index, splits=splits, device=device)
    num_classes = len(index.classes)

    torch.manual_seed(config.seed)
    model = build_model(
        config.model.arch,
        num_classes,
        pretrained=config.model.pretrained,
        weights_path=config.model.weights_path,
        zero_init_residual=config.model.zero_init_residual,
    ).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    teacher = _load_teacher(config, num_classes=num_classes, device=device, channels_last=channels_last)
    tricks = Tricks(config.tricks, seed=config.seed, teacher=teacher)
    optimizer = build_optimizer(model, config.optim)
    steps_per_epoch = len(sources.train)
    schedule = build_schedule(config.schedule, epochs=config.epochs, steps_per_epoch=steps_per_epoch)
    # torch.compile is typed as returning a plain callable; given a module it returns a module (OptimizedModule).
    step_model = cast(nn.Module, torch.compile(model)) if config.runtime.compile else model

    progress = _Progress()
    if folder.last_checkpoint.exists():
        progress = _resume(folder.last_checkpoint, config=config, model=model, optimizer=optimizer, device=device)
    fence.check()
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
            history=progress.history,
        )
    )

    step_log = _StepLog(every=config.runtime.step_log_every, steps_per_epoch=steps_per_epoch)

    def on_step(step: int, loss: torch.Tensor) -> None:
        reporter.batch(step)
        step_log.add(step, loss, _largest_lr(optimizer))

    for epoch in range(progress.epoch + 1, config.epochs + 1):
        sources.train.set_epoch(epoch)
        tricks.set_epoch(epoch)
        train = train_one_epoch(
            model=step_model,
            loader=sources.train,
            optimizer=optimizer,
            schedule=schedule,
            tricks=tricks,
            start_step=(epoch - 1) * steps_per_epoch,
            autocast_dtype=autocast_dtype,
            channels_last=channels_last,
            on_step=on_step,
        )
        for event in step_log.drain():
            reporter.step(event)
        valid = evaluate(
            model=step_model, loader=sources.valid, autocast_dtype=autocast_dtype, channels_last=channels_last
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
        fence.check()
        progress.record(row)
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
        with folder.metrics.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        reporter.epoch(row)

    result = _test_best(
        folder,
        model=model,
        sources_test=sources.test,
        progress=progress,
        device=device,
        autocast_dtype=autocast_dtype,
        channels_last=channels_last,
    )
    fence.check()
    write_atomic(folder.result, json.dumps(result, indent=2) + "\n")
    reporter.result(result)
    return result


class _StepLog:
    """Sparse per-step loss and learning rate, read back from the device once per epoch.

    A ``.item()`` at each logged step would stall the GPU; the losses wait on the device instead.
    """

    def __init__(self, *, every: int, steps_per_epoch: int):
        self.every = every
        self.steps_per_epoch = steps_per_epoch
        self.pending: list[tuple[int, torch.Tensor, float]] = []

    def add(self, step: int, loss: torch.Tensor, lr: float) -> None:
        done = step + 1
        if done % self.every == 0:
            self.pending.append((done, loss, lr))

    def drain(self) -> list[StepEvent]:
        if not self.pending:
            return []
        losses = torch.stack([loss for _, loss, _ in self.pending]).tolist()
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


def _resume(path: Path, *, config: RunConfig, model, optimizer, device: torch.device) -> _Progress:
    state = load_checkpoint(path, map_location=device)
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
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    channels_last: bool,
) -> Result:
    best = load_checkpoint(folder.best_checkpoint, map_location=device)
    model.load_state_dict(best["model"])
    test = evaluate(model=model, loader=sources_test, autocast_dtype=autocast_dtype, channels_last=channels_last)
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
