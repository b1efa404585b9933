"""Learning-rate schedules as pure functions of the batch index.

A schedule holds no state: the loop calls ``apply_schedule(optimizer, schedule, step)`` before each
batch, so resuming from a checkpoint only needs the step number, and the launch page's preview is
computed by the very same code. OneCycle and cosine reproduce PyTorch's OneCycleLR and
CosineAnnealingLR (stepped every batch) step for step; the tests hold them to that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainer.config import RunConfig, ScheduleConfig
from trainer.models.stages import group_peak_lrs

if TYPE_CHECKING:
    # Only a type: the server draws the launch page's preview from this module without loading torch.
    import torch

# PyTorch's OneCycleLR defaults, which the report kept.
ONECYCLE_PCT_START = 0.3
ONECYCLE_DIV_FACTOR = 25.0
ONECYCLE_FINAL_DIV_FACTOR = 1e4
ONECYCLE_BASE_MOMENTUM = 0.85
ONECYCLE_MAX_MOMENTUM = 0.95

PREVIEW_MAX_POINTS = 2000


def _anneal_cos(start: float, end: float, pct: float) -> float:
    # OneCycleLR's own formula, kept term for term so the floats match.
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


@dataclass(frozen=True)
class LRSchedule:
    name: str
    total_steps: int
    warmup_steps: int

    def _onecycle(self, step: int) -> tuple[float, float]:
        """(lr factor, momentum) at ``step``, OneCycleLR's two phases with max_lr = 1."""
        warm_end = float(ONECYCLE_PCT_START * self.total_steps) - 1
        if step <= warm_end:
            pct = step / warm_end
            return (
                _anneal_cos(1 / ONECYCLE_DIV_FACTOR, 1.0, pct),
                _anneal_cos(ONECYCLE_MAX_MOMENTUM, ONECYCLE_BASE_MOMENTUM, pct),
            )
        pct = (step - warm_end) / (self.total_steps - 1 - warm_end)
        min_factor = 1 / ONECYCLE_DIV_FACTOR / ONECYCLE_FINAL_DIV_FACTOR
        return (
            _anneal_cos(1.0, min_factor, pct),
            _anneal_cos(ONECYCLE_BASE_MOMENTUM, ONECYCLE_MAX_MOMENTUM, pct),
        )

    def _clamp(self, step: int) -> int:
        # Steps past the end hold the last batch's value: a loop may log the rate after its final batch.
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return min(step, self.total_steps - 1)

    def factor(self, step: int) -> float:
        """Multiplier of each group's peak lr for the batch with 0-based index ``step``."""
        step = self._clamp(step)
        if self.name == "onecycle":
            return self._onecycle(step)[0]
        if step < self.warmup_steps:
            # Linear from 1/(w+1) up to the peak reached at step w: no batch is wasted at lr 0.
            return (step + 1) / (self.warmup_steps + 1)
        if self.name == "constant":
            return 1.0
        # Cosine over the steps after warmup; with no warmup this is CosineAnnealingLR(T_max=total, eta_min=0).
        return (1 + math.cos(math.pi * (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))) / 2

    def beta1(self, step: int) -> float | None:
        """OneCycle's cycled momentum (Adam beta1 or SGD momentum); None: leave the optimizer's own."""
        if self.name != "onecycle":
            return None
        return self._onecycle(self._clamp(step))[1]


def build_schedule(schedule: ScheduleConfig, *, epochs: int, steps_per_epoch: int) -> LRSchedule:
    total_steps = epochs * steps_per_epoch
    if total_steps < 1:
        raise ValueError(f"a schedule needs at least one step, got {epochs} epochs x {steps_per_epoch} steps")
    # The config keeps warmup_epochs < epochs; rounding could still reach the end on tiny epochs.
    warmup_steps = min(round(schedule.warmup_epochs * steps_per_epoch), total_steps - 1)
    return LRSchedule(name=schedule.name, total_steps=total_steps, warmup_steps=warmup_steps)


def apply_schedule(optimizer: torch.optim.Optimizer, schedule: LRSchedule, step: int) -> None:
    """Set every group's lr (and OneCycle's momentum) for the batch about to run."""
    factor = schedule.factor(step)
    beta1 = schedule.beta1(step)
    for group in optimizer.param_groups:
        group["lr"] = group["peak_lr"] * factor
        if beta1 is None:
            continue
        if "betas" in group:
            group["betas"] = (beta1, *group["betas"][1:])
        else:
            group["momentum"] = beta1


def schedule_preview(config: RunConfig, *, steps_per_epoch: int) -> dict:
    """Each group's lr over the run, for the launch page; at most PREVIEW_MAX_POINTS steps, last one included."""
    schedule = build_schedule(config.schedule, epochs=config.epochs, steps_per_epoch=steps_per_epoch)
    total = schedule.total_steps
    if total <= PREVIEW_MAX_POINTS:
        steps = list(range(total))
    else:
        # Evenly spaced; spacing > 1 here, so no step repeats.
        steps = [round(i * (total - 1) / (PREVIEW_MAX_POINTS - 1)) for i in range(PREVIEW_MAX_POINTS)]
    factors = [schedule.factor(step) for step in steps]
    return {
        "steps": steps,
        "epochs": [step / steps_per_epoch for step in steps],
        "groups": {
            name: [peak * f for f in factors]
            for name, peak in group_peak_lrs(config.optim, lr_scale=config.lr_scale).items()
        },
    }
