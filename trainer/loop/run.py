"""Train one prepared run folder, from its config to its result.

The folder (``protocol.RunFolder``) is the run's whole state. Starting again on a folder with a
last checkpoint resumes it exactly, and the epochs already done are reported again so a reader that
missed them (a worker that died) still stores each one.

The last checkpoint is written at each epoch's end, and mid-epoch when the warning signal stops the run
(``trainer.loop.warning``): that one also holds the part of the epoch trained (``mid_epoch``: its batches,
running sums, seconds and telemetry, and the mixup draws' state), so the next start skips those batches
and continues at the following step, and the epoch's row, stored once at its end, is the one an
uninterrupted run writes. Only the kept checkpoint (lowest validation loss) is read for the result, and
it is written at epochs' ends only.

Under torchrun every rank runs ``train_run`` on the same folder (see ``trainer.parallel.distributed``): all
of them read the config and the checkpoint and check the attempt fence; rank 0 alone reports and
writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.config import RunConfig
from trainer.data.cub import DatasetError
from trainer.data.loaders import BatchSource
from trainer.files import write_atomic
from trainer.loop.checkpoint import load_checkpoint, restore_rng_states, rng_states, save_checkpoint
from trainer.loop.disk import data_root_gone, is_no_space, no_space_left
from trainer.loop.engine import EpochSoFar, EpochStopped, evaluate, train_one_epoch
from trainer.loop.memory import out_of_memory
from trainer.loop.reporters import BaseReporter, Reporter
from trainer.loop.setup import RunError, on_devices, prepare_training
from trainer.loop.warning import stopped, warned
from trainer.parallel.devices import DeviceChoice
from trainer.parallel.distributed import World, describe_devices, describe_software
from trainer.protocol import AttemptFence, EpochRow, Result, RunFolder, StartInfo, StepEvent, data_root_readable
from trainer.tricks.schedules import build_schedule


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

    # Only a root that was there at the start can vanish mid-run; one never there is the config's fault.
    root_was_readable = data_root_readable(config.data.root)

    def train(world: World, choice: DeviceChoice) -> Result:
        try:
            return _train(
                folder,
                fence=fence,
                config=config,
                world=world,
                choice=choice,
                reporter=reporter if world.is_main else BaseReporter(),
            )
        except torch.OutOfMemoryError as exc:  # the config does not fit the device: the run's fault, named
            raise out_of_memory(config, exc, device=choice.device, world_size=world.size) from exc
        except (OSError, RuntimeError, DatasetError) as exc:  # a full disk, a data root gone: the machine's
            if is_no_space(exc):
                raise no_space_left(folder.path, exc) from exc
            if root_was_readable and not data_root_readable(config.data.root):
                raise data_root_gone(config.data.root, exc) from exc
            raise

    return on_devices(config, train)


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
            # Resumed from the warning's mid-epoch checkpoint: the steps done before it.
            start_step=None if progress.so_far is None else progress.epoch * steps_per_epoch + progress.so_far.batches,
            num_train=sources.train.num_samples,
            num_valid=sources.valid.num_samples,
            num_test=sources.test.num_samples,
            num_classes=num_classes,
            device=str(device),
            world_size=world.size,
            devices=describe_devices(world, device),
            fallback=choice.fallback,
            software=describe_software(),
            history=progress.history,
        )
    )

    step_log = _StepLog(every=config.runtime.step_log_every, steps_per_epoch=steps_per_epoch, world=world)

    def on_step(step: int, loss: torch.Tensor) -> None:
        reporter.batch(step)
        step_log.add(step, loss, _largest_lr(optimizer))

    for epoch in range(progress.epoch + 1, config.epochs + 1):
        so_far, progress.so_far = progress.so_far, None
        sources.train.set_epoch(epoch, skip=so_far.batches if so_far is not None else 0)
        tricks.set_epoch(epoch)
        if so_far is not None:
            tricks.restore_mix_state(progress.mix_state)
        try:
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
                so_far=so_far,
                stop=lambda step: warned(world, step=step, steps_per_epoch=steps_per_epoch),
            )
        except EpochStopped as stop:
            for event in step_log.drain():
                reporter.step(event)
            fence.check()
            step = (epoch - 1) * steps_per_epoch + stop.so_far.batches
            if world.is_main:
                save_checkpoint(
                    folder.last_checkpoint,
                    _last_state(model, optimizer, config, progress, step=step, num_classes=num_classes)
                    | {"mid_epoch": _mid_epoch(stop.so_far, epoch=epoch, mix_state=tricks.mix_state())},
                )
            world.barrier()  # no rank exits (which ends torchrun's others) before the checkpoint is written
            raise stopped(epoch=epoch, batch=stop.so_far.batches, step=step) from None
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
        # Where the epoch's time went, as far as this device measures it (trainer.loop.telemetry).
        if "data_wait_share" in train:
            row["data_wait_share"] = train["data_wait_share"]
        if "peak_memory_bytes" in train:
            row["peak_memory_bytes"] = round(train["peak_memory_bytes"])
        if "gpu_utilization" in train:
            row["gpu_utilization"] = train["gpu_utilization"]
        if "peak_rss_bytes" in train:
            row["peak_rss_bytes"] = round(train["peak_rss_bytes"])
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

    world.barrier()  # rank 0 has written the kept checkpoint every rank now tests
    result = _test_checkpoint(
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
    """The kept checkpoint when ``epoch`` has the lowest validation loss so far, and the last one, which a
    new attempt resumes."""
    if progress.checkpoint_epoch == epoch:
        save_checkpoint(
            folder.kept_checkpoint,
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
        _last_state(model, optimizer, config, progress, step=epoch * steps_per_epoch, num_classes=num_classes),
    )


def _last_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: RunConfig,
    progress: _Progress,
    *,
    step: int,
    num_classes: int,
) -> dict[str, Any]:
    """The last checkpoint's content: ``epoch`` is the last whole epoch, ``step`` the global steps done."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": progress.epoch,
        "step": step,
        "history": progress.history,
        "num_classes": num_classes,
        "config": config.model_dump(mode="json"),
        "fingerprint": config.fingerprint(),
        "rng": rng_states(),
    }


def _mid_epoch(so_far: EpochSoFar, *, epoch: int, mix_state: torch.Tensor) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "batches": so_far.batches,
        "sums": so_far.sums,
        "seconds": so_far.seconds,
        "figures": so_far.figures,
        "mixup": mix_state,
    }


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
    """Epoch rows so far and the checkpoint epoch: the lowest validation loss (the checkpoint the report kept)."""

    def __init__(self, history: list[EpochRow] | None = None):
        self.history: list[EpochRow] = []
        self.checkpoint_epoch = 0
        # The next epoch's part trained before the warning stopped the run, and its mixup draws' state.
        self.so_far: EpochSoFar | None = None
        self.mix_state = torch.Generator().get_state()
        for row in history or []:
            self.record(row)

    @property
    def epoch(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0

    def record(self, row: EpochRow) -> None:
        self.history.append(row)
        kept = self.checkpoint_row
        if kept is None or row["valid_loss"] < kept["valid_loss"]:
            self.checkpoint_epoch = row["epoch"]

    @property
    def checkpoint_row(self) -> EpochRow | None:
        return self.history[self.checkpoint_epoch - 1] if self.checkpoint_epoch else None

    @property
    def peak_row(self) -> EpochRow:
        """The highest valid top-1, earliest on a tie: the report's figure."""
        return max(self.history, key=lambda row: (row["valid_top1"], -row["epoch"]))


def resume(path: Path, *, config: RunConfig, model: nn.Module, optimizer: torch.optim.Optimizer) -> _Progress:
    """Model, optimizer and random states from the last checkpoint ``path``; the epochs it holds, and the
    part of the next one trained when it was written mid-epoch.

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
    progress = _Progress(state["history"])
    mid = state.get("mid_epoch")
    if mid is not None:
        if mid["epoch"] != progress.epoch + 1:
            raise RunError(f"{path} holds part of epoch {mid['epoch']} after epoch {progress.epoch}: it is damaged")
        progress.so_far = EpochSoFar(
            batches=mid["batches"], sums=mid["sums"], seconds=mid["seconds"], figures=mid["figures"]
        )
        progress.mix_state = mid["mixup"]
    return progress


def _test_checkpoint(
    folder: RunFolder,
    *,
    model: nn.Module,
    sources_test: BatchSource,
    progress: _Progress,
    autocast_dtype: torch.dtype | None,
    channels_last: bool,
    world: World,
) -> Result:
    model.load_state_dict(load_checkpoint(folder.kept_checkpoint)["model"])
    test = evaluate(
        model=model, loader=sources_test, autocast_dtype=autocast_dtype, channels_last=channels_last, world=world
    )
    kept = progress.checkpoint_row
    assert kept is not None, "epochs >= 1, so at least one epoch was recorded"
    peak = progress.peak_row
    return Result(
        test_loss=test["loss"],
        test_top1=test["top1"],
        test_top5=test["top5"],
        checkpoint_epoch=progress.checkpoint_epoch,
        checkpoint_valid_loss=kept["valid_loss"],
        checkpoint_valid_top1=kept["valid_top1"],
        checkpoint_valid_top5=kept["valid_top5"],
        peak_epoch=peak["epoch"],
        peak_valid_top1=peak["valid_top1"],
        peak_valid_top5=peak["valid_top5"],
    )
