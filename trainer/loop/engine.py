"""One training epoch and one evaluation pass, readable top to bottom.

Metrics are summed on the device and read back once per pass: a ``.item()`` per step would stall
the GPU on every batch. Accuracies are percentages over images, not averages of batch averages.
With several processes the sums are added over ranks (``World.all_sum``) before they are read, so
every figure is the global one. Where a training pass's time goes (waiting for batches, peak memory,
GPU utilization) is measured around its batches by ``trainer.loop.telemetry``, also without a sync per step.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.loop.telemetry import PassTelemetry
from trainer.parallel.distributed import World
from trainer.tricks.losses import LossParts
from trainer.tricks.mixup import MixedBatch
from trainer.tricks.recipe import Tricks
from trainer.tricks.schedules import LRSchedule, apply_schedule

StepCallback = Callable[[int, Tensor], None]


@dataclass(frozen=True)
class EpochSoFar:
    """The part of an epoch trained before a stop, which a resumed pass carries on from: the batches done,
    the global sums (loss, task loss, kd loss, top-1 hits, top-5 hits, images), the seconds and the
    telemetry figures of that part."""

    batches: int
    sums: list[float]
    seconds: float
    figures: dict[str, float]


class EpochStopped(Exception):
    """``stop`` said so after a step: the pass ends there, with what it trained so far."""

    def __init__(self, so_far: EpochSoFar):
        super().__init__(f"stopped after batch {so_far.batches}")
        self.so_far = so_far


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _correct_top1_top5(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    k = min(5, logits.size(1))
    top = logits.topk(k, dim=1).indices
    hits = top.eq(targets.unsqueeze(1))
    return hits[:, 0].sum(), hits.any(dim=1).sum()


@dataclass(frozen=True)
class StepDone:
    """What one optimizer step saw: the (mixed) batch, the logits, the loss parts (None for an empty
    part of a short last batch), this rank's image count and the global batch's."""

    batch: MixedBatch
    logits: Tensor
    parts: LossParts | None
    size: int
    global_size: int

    def share(self, zero: Tensor) -> Tensor:
        """This rank's contribution to the global batch's mean loss (the whole mean when run alone)."""
        return zero if self.parts is None else self.parts.loss.detach() * (self.size / self.global_size)


def train_step(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loaded: Tensor,
    targets: Tensor,
    tricks: Tricks,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    world: World | None = None,
    global_n: int | None = None,
) -> StepDone:
    """One batch: mix it, score it, step the optimizer at the rates its groups hold now.

    ``global_n`` is the global batch's size when ``loaded`` is this rank's part of it (see
    train_one_epoch); None when the part is the whole batch.
    """
    world = world or World()
    n = targets.size(0)
    global_n = n if global_n is None else global_n
    images = loaded.contiguous(memory_format=torch.channels_last) if channels_last else loaded
    batch = tricks.mix(images, targets)
    with _autocast(device, autocast_dtype):
        # float32, as the model's head computes them (see models.Float32Linear): the loss and the
        # top-k ranking read the same logits.
        logits = model(batch.images).float()
        parts = tricks.loss(logits, batch) if n else None
    optimizer.zero_grad(set_to_none=True)
    if parts is None:
        # An empty part of a short last batch: no loss, but the rank still takes part in the
        # forward pass's SyncBatchNorm and the gradients' all-reduce, with zeros.
        (logits.sum() * 0.0).backward()
    else:
        weight = n * world.size / global_n
        (parts.loss if weight == 1.0 else parts.loss * weight).backward()
    optimizer.step()
    return StepDone(batch, logits, parts, n, global_n)


def train_one_epoch(
    *,
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    optimizer: torch.optim.Optimizer,
    schedule: LRSchedule,
    tricks: Tricks,
    start_step: int,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    on_step: StepCallback | None = None,
    world: World | None = None,
    global_sizes: Sequence[int] | None = None,
    so_far: EpochSoFar | None = None,
    stop: Callable[[int], bool] | None = None,
) -> dict[str, float]:
    """Train for one pass over ``loader``; ``start_step`` is the global index of the epoch's first batch.

    ``so_far``: the part of this epoch an earlier pass trained; ``loader`` then starts after its batches
    (the source was set to skip them), and the figures cover the whole epoch. ``stop``, asked after each
    step on every rank at once with the global steps done, ends the pass there with ``EpochStopped``.

    ``tricks`` is set to the epoch already: the pass mixes and scores each batch through it.

    With several processes (``world``), ``loader`` yields this rank's part of each global batch,
    whose sizes are ``global_sizes``, and ``model`` is DDP, which averages the gradients over ranks.
    Each rank's mean loss is weighted by ``part * world size / global batch``, so that average is the
    gradient of the global batch's mean loss, as one process computes it. ``on_step`` gets this
    rank's contribution to that mean (the whole mean when run alone).
    """
    world = world or World()
    model.train()
    device = next(model.parameters()).device
    # loss, task loss, kd loss, top-1 hits, top-5 hits; then the image count, for the sum over ranks
    sums = torch.zeros(6, device=device, dtype=torch.float64)
    skipped, earlier_seconds = (so_far.batches, so_far.seconds) if so_far is not None else (0, 0.0)
    if so_far is not None and world.is_main:  # the sums are global: one rank carries them
        sums += torch.tensor(so_far.sums, device=device, dtype=torch.float64)
    zero = torch.zeros((), device=device)
    images_seen = 0
    step = start_step + skipped
    telemetry = PassTelemetry(device)
    started = time.perf_counter()
    batches = telemetry.timed(loader)
    for index, (loaded, targets) in enumerate(batches, start=skipped):
        apply_schedule(optimizer, schedule, step)
        done = train_step(
            model=model,
            optimizer=optimizer,
            loaded=loaded,
            targets=targets,
            tricks=tricks,
            device=device,
            autocast_dtype=autocast_dtype,
            channels_last=channels_last,
            world=world,
            global_n=None if global_sizes is None else global_sizes[index],
        )
        if done.parts is not None:
            top1, top5 = _correct_top1_top5(done.logits.detach(), done.batch.dominant_targets)
            loss, task_loss = done.parts.loss.detach(), done.parts.task_loss.detach()
            kd_loss = done.parts.kd_loss.detach() if done.parts.kd_loss is not None else zero
            n = done.size
            sums[:5] += torch.stack([loss * n, task_loss * n, kd_loss * n, top1, top5]).double()
        images_seen += done.size
        if on_step is not None:
            on_step(step, done.share(zero))
        step += 1
        if stop is not None and stop(step):
            batches.close()  # ends the telemetry's measures at this step
            elapsed = time.perf_counter() - started
            sums[5] += images_seen
            raise EpochStopped(
                EpochSoFar(
                    batches=index + 1,
                    sums=world.all_sum(sums).tolist(),
                    seconds=earlier_seconds + elapsed,
                    figures=merge_figures(so_far, telemetry.figures(), elapsed),
                )
            )

    sums[5] += images_seen
    loss, task_loss, kd_loss, top1, top5, images = world.all_sum(sums).tolist()
    images_seen = round(images)
    elapsed = time.perf_counter() - started
    seconds = earlier_seconds + elapsed
    figures = merge_figures(so_far, telemetry.figures(), elapsed)
    divisor = max(images_seen, 1)
    stats = {
        "train_loss": loss / divisor,
        "train_top1": 100.0 * top1 / divisor,
        "train_top5": 100.0 * top5 / divisor,
        "images": images_seen,
        "seconds": seconds,
        "steps": step - start_step,
    }
    if tricks.distils:
        stats["train_task_loss"] = task_loss / divisor
        stats["train_kd_loss"] = kd_loss / divisor
    stats.update(figures)
    return stats


def merge_figures(so_far: EpochSoFar | None, figures: dict[str, float], seconds: float) -> dict[str, float]:
    """The telemetry of an epoch trained in two parts: peaks are the higher one, shares weighted by time."""
    if so_far is None:
        return figures
    merged = dict(so_far.figures)
    for name, value in figures.items():
        if name not in merged:
            merged[name] = value
        elif name.startswith("peak_"):
            merged[name] = max(merged[name], value)
        else:
            total = so_far.seconds + seconds
            merged[name] = (merged[name] * so_far.seconds + value * seconds) / total if total > 0 else value
    return merged


@torch.no_grad()
def evaluate(
    *,
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    world: World | None = None,
) -> dict[str, float]:
    """Plain cross-entropy and top-1/top-5 over every image of ``loader``.

    With several processes, ``loader`` holds this rank's part of the split and the sums are added
    over ranks: each image counts once. ``model`` must then be the bare module, not DDP: ranks may
    take different numbers of batches, and DDP's forward pass would wait for the others.
    """
    world = world or World()
    model.eval()
    device = next(model.parameters()).device
    sums = torch.zeros(4, device=device, dtype=torch.float64)  # loss, top-1 hits, top-5 hits, images
    images_seen = 0
    for loaded, targets in loader:
        images = loaded.contiguous(memory_format=torch.channels_last) if channels_last else loaded
        with _autocast(device, autocast_dtype):
            logits = model(images).float()
        loss = F.cross_entropy(logits, targets, reduction="sum")
        top1, top5 = _correct_top1_top5(logits, targets)
        sums[:3] += torch.stack([loss, top1, top5]).double()
        images_seen += targets.size(0)
    sums[3] = images_seen
    loss, top1, top5, images = world.all_sum(sums).tolist()
    images_seen = round(images)
    divisor = max(images_seen, 1)
    return {
        "loss": loss / divisor,
        "top1": 100.0 * top1 / divisor,
        "top5": 100.0 * top5 / divisor,
        "images": images_seen,
    }
