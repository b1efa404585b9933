"""One training epoch and one evaluation pass, readable top to bottom.

Metrics are summed on the device and read back once per pass: a ``.item()`` per step would stall
the GPU on every batch. Accuracies are percentages over images, not averages of batch averages.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.tricks.recipe import Tricks
from trainer.tricks.schedules import LRSchedule, apply_schedule

StepCallback = Callable[[int, Tensor], None]


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _correct_top1_top5(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    k = min(5, logits.size(1))
    top = logits.topk(k, dim=1).indices
    hits = top.eq(targets.unsqueeze(1))
    return hits[:, 0].sum(), hits.any(dim=1).sum()


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
) -> dict[str, float]:
    """Train for one pass over ``loader``; ``start_step`` is the global index of its first batch.

    ``tricks`` is set to the epoch already: the pass mixes and scores each batch through it.
    """
    model.train()
    device = next(model.parameters()).device
    sums = torch.zeros(5, device=device, dtype=torch.float64)  # loss, task loss, kd loss, top-1 hits, top-5 hits
    images_seen = 0
    step = start_step
    started = time.perf_counter()
    for loaded, targets in loader:
        apply_schedule(optimizer, schedule, step)
        images = loaded.contiguous(memory_format=torch.channels_last) if channels_last else loaded
        batch = tricks.mix(images, targets)
        with _autocast(device, autocast_dtype):
            logits = model(batch.images)
            parts = tricks.loss(logits, batch)
        optimizer.zero_grad(set_to_none=True)
        parts.loss.backward()
        optimizer.step()

        top1, top5 = _correct_top1_top5(logits.detach(), batch.dominant_targets)
        n = targets.size(0)
        kd_loss = parts.kd_loss.detach() if parts.kd_loss is not None else torch.zeros((), device=device)
        sums += torch.stack([parts.loss.detach() * n, parts.task_loss.detach() * n, kd_loss * n, top1, top5]).double()
        images_seen += n
        if on_step is not None:
            on_step(step, parts.loss.detach())
        step += 1

    loss, task_loss, kd_loss, top1, top5 = sums.tolist()
    seconds = time.perf_counter() - started
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
    return stats


@torch.no_grad()
def evaluate(
    *,
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """Plain cross-entropy and top-1/top-5 over every image of ``loader``."""
    model.eval()
    device = next(model.parameters()).device
    sums = torch.zeros(3, device=device, dtype=torch.float64)  # loss, top-1 hits, top-5 hits
    images_seen = 0
    for loaded, targets in loader:
        images = loaded.contiguous(memory_format=torch.channels_last) if channels_last else loaded
        with _autocast(device, autocast_dtype):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), targets, reduction="sum")
        top1, top5 = _correct_top1_top5(logits, targets)
        sums += torch.stack([loss, top1, top5]).double()
        images_seen += targets.size(0)
    loss, top1, top5 = sums.tolist()
    divisor = max(images_seen, 1)
    return {
        "loss": loss / divisor,
        "top1": 100.0 * top1 / divisor,
        "top5": 100.0 * top5 / divisor,
        "images": images_seen,
    }
