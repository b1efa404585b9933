"""The LR range test: a fresh copy of a run's model trained while the learning rate rises, to read the loss.

It trains what the run would train (``run.prepare_training``: the same data, model, layer-wise rates,
tricks and teacher) one batch at a time through the engine's ``train_step``, with every group's rate
set to the sweep's rate over its divisor, for ``sweep.steps`` batches or until the stop rule of
``trainer.lr_finder.sweep`` fires. A sweep longer than an epoch goes on into the next one, with that epoch's
order and augmentation. Every step is reported (its loss is read back at once: the stop rule needs it).
Model and optimizer are thrown away at the end: a range test writes no checkpoint, nor anything else,
into its folder, so nothing a run could resume from is ever left behind.

Under torchrun every rank trains its part of each global batch, as a run's steps do; rank 0 reports.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import torch

from trainer.config import RunConfig
from trainer.loop.engine import train_step
from trainer.loop.reporters import BaseReporter, Reporter
from trainer.loop.setup import RunError, Training, on_devices, prepare_training
from trainer.lr_finder.sweep import Analysis, LRSweep, Smoother, analyse, sweep_rate
from trainer.parallel.devices import DeviceChoice
from trainer.parallel.distributed import World, describe_devices, describe_software
from trainer.protocol import AttemptFence, LRRangeResult, RunFolder, StartInfo, StepEvent


def range_test_folder(run_dir: str | Path, *, reporter: Reporter, attempt: int | None = None) -> Analysis:
    """The range test a worker prepared in ``run_dir``: its config.json and sweep.json."""
    folder = RunFolder(Path(run_dir))
    fence = AttemptFence(folder, attempt)
    fence.check()
    for path in (folder.config, folder.sweep):
        if not path.is_file():
            raise RunError(f"{path} not found: an LR range test's folder needs its config.json and sweep.json")
    return range_test(RunConfig.load(folder.config), LRSweep.load(folder.sweep), reporter=reporter, fence=fence)


def range_test(config: RunConfig, sweep: LRSweep, *, reporter: Reporter, fence: AttemptFence | None = None) -> Analysis:
    """Sweep ``config``'s optim.lr as ``sweep`` says; ``reporter`` hears of each step on rank 0."""
    return on_devices(
        config,
        lambda world, choice: _sweep(
            config,
            sweep,
            world=world,
            choice=choice,
            fence=fence,
            reporter=reporter if world.is_main else BaseReporter(),
        ),
    )


def _sweep(
    config: RunConfig,
    sweep: LRSweep,
    *,
    world: World,
    choice: DeviceChoice,
    fence: AttemptFence | None,
    reporter: Reporter,
) -> Analysis:
    device = choice.device
    training = prepare_training(config, world=world, device=device)
    train, optimizer = training.sources.train, training.optimizer
    steps_per_epoch = training.steps_per_epoch
    epochs = -(-sweep.steps // steps_per_epoch)
    reporter.start(
        StartInfo(
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            start_epoch=0,  # a range test never resumes: a new attempt sweeps from the start
            start_step=None,
            num_train=train.num_samples,
            num_valid=training.sources.valid.num_samples,
            num_test=training.sources.test.num_samples,
            num_classes=training.num_classes,
            device=str(device),
            world_size=world.size,
            devices=describe_devices(world, device),
            fallback=choice.fallback,
            software=describe_software(),
            history=[],
        )
    )
    # The sweep's rate is optim.lr's: each group keeps its share of it (its divisor, the linear scaling).
    shares = [group["peak_lr"] / config.optim.lr for group in optimizer.param_groups]
    smoother = Smoother(smoothing=sweep.smoothing, stop_factor=sweep.stop_factor)
    rates: list[float] = []
    losses: list[float] = []
    zero = torch.zeros((), device=device)
    batches = itertools.islice(_batches(training, fence=fence, epochs=epochs), sweep.steps)
    for step, (epoch, index, (loaded, targets)) in enumerate(batches):
        rate = sweep_rate(sweep, step)
        for group, share in zip(optimizer.param_groups, shares, strict=True):
            group["lr"] = rate * share
        done = train_step(
            model=training.step_model,
            optimizer=optimizer,
            loaded=loaded,
            targets=targets,
            tricks=training.tricks,
            device=device,
            autocast_dtype=training.autocast_dtype,
            channels_last=training.channels_last,
            world=world,
            global_n=None if training.global_sizes is None else training.global_sizes[index],
        )
        # Read back at every step: the stop rule needs the number now. Every rank gets the same sum.
        loss = world.all_sum(done.share(zero).double()).item()
        rates.append(rate)
        losses.append(loss)
        reporter.batch(step)
        reporter.step(StepEvent(epoch=epoch, step=step + 1, loss=loss, lr=rate))
        if smoother.stop_reason(loss) is not None:
            break
    if fence is not None:
        fence.check()
    return _report(analyse(rates, losses, sweep, finished=True), reporter=reporter)


def _batches(
    training: Training, *, fence: AttemptFence | None, epochs: int
) -> Iterator[tuple[int, int, tuple[torch.Tensor, torch.Tensor]]]:
    """(epoch, index in the epoch, batch) over as many epochs as the sweep needs, each seeded as a run's."""
    for epoch in range(1, epochs + 1):
        if fence is not None:
            fence.check()
        training.sources.train.set_epoch(epoch)
        training.tricks.set_epoch(epoch)
        for index, batch in enumerate(training.sources.train):
            yield epoch, index, batch


def _report(analysis: Analysis, *, reporter: Reporter) -> Analysis:
    minimum, steepest, stop = analysis.minimum, analysis.steepest, analysis.stop
    reporter.lr_range(
        LRRangeResult(
            steps=len(analysis.points),
            stop_step=None if stop is None else stop.step,
            stop_reason=None if stop is None else stop.reason,
            minimum_lr=None if minimum is None else minimum.lr,
            minimum_loss=None if minimum is None else minimum.smoothed,
            steepest_lr=None if steepest is None else steepest.lr,
            suggestion=analysis.suggestion,
        )
    )
    return analysis
