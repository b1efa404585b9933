"""How long queued runs will take: from earlier runs of the same size where there are some, else a
rough figure from the model's arithmetic and the kind of device the workers have.

A run's epoch costs about the same whatever its tricks (mixup permutes within the batch; the
schedules cost nothing); what changes it is the model, the image size, the batch, the dataset,
distillation's teacher forward pass, and the device.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import EpochMetric, Run, RunStatus, Worker
from trainer.config import RunConfig

DeviceKind = Literal["cpu", "cuda"]

# Forward GFLOPs per 224 px image (torchvision's model cards, which count multiply-adds); timm's
# ResNet-D counted the same way with torch.utils.flop_counter (which gives resnet50 4.09 too).
GFLOPS = {
    "resnet18": 1.81,
    "resnet34": 3.66,
    "resnet50": 4.09,
    "resnet101": 7.80,
    "resnet152": 11.51,
    "resnet18d": 2.05,
    "resnet34d": 3.90,
    "resnet50d": 4.33,
    "resnet101d": 8.04,
    "resnet152d": 11.75,
}
# Sustained training arithmetic, forward and backward, in GFLOP/s: a GPU at NVIDIA's published
# ResNet-50 bf16 rate on an A100 (2,470 images/s), a CPU as this project's 2-core machine trains.
RATE = {"cuda": 2470 * 3 * GFLOPS["resnet50"], "cpu": 25.0}
# Below this size a small image costs no less on a CPU: per-layer overhead dominates.
SMALLEST_PRICED_SIZE = 64
# Starting the trainer (torch import, model build, dataset index, the decoded cache) per run.
START_SECONDS = {"cuda": 45.0, "cpu": 8.0}
HISTORY_LIMIT = 500


@dataclass(frozen=True)
class Estimate:
    seconds: float  # wall time, the runs spread over ``parallel`` devices
    runs: int
    device: DeviceKind
    parallel: int
    from_history: int  # runs whose time came from earlier runs of the same size
    basis: str  # one sentence: where the figure comes from


def _speed_key(config: RunConfig, *, distils: bool) -> tuple[Any, ...]:
    data = config.data
    return (
        config.model.arch,
        data.image_size,
        config.batch_size,
        data.root,
        data.split,
        data.pipeline,
        distils,
        config.runtime.amp,
        config.runtime.compile,
    )


def _history(session: Session) -> dict[tuple[Any, ...], list[float]]:
    """Mean epoch seconds of recent succeeded runs, by (speed key, device kind) where the worker that
    trained them says what it had."""
    kinds = {worker.name: worker.devices[0]["kind"] for worker in session.scalars(select(Worker)) if worker.devices}
    recent = session.execute(
        select(Run.id, Run.config, Run.worker, func.avg(EpochMetric.seconds))
        .join(EpochMetric, EpochMetric.run_id == Run.id)
        .where(Run.status == RunStatus.succeeded, EpochMetric.seconds.is_not(None))
        .group_by(Run.id, Run.config, Run.worker)
        .order_by(Run.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    seen: dict[tuple[Any, ...], list[float]] = {}
    for _id, config, worker, seconds in recent:
        kind = kinds.get(worker or "")
        if kind is None:
            continue
        run_config = RunConfig.model_validate(config)
        key = (_speed_key(run_config, distils=run_config.tricks.kd.teacher is not None), kind)
        seen.setdefault(key, []).append(float(seconds))
    return seen


@functools.cache
def forward_gflops(arch: str) -> float:
    """GFLOPs per 224 px image: the table's, else counted once on the model itself (any timm model)."""
    if arch in GFLOPS:
        return GFLOPS[arch]
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from trainer.models.build import build_model

    model = build_model(arch, 1000, pretrained=False).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 224, 224))
    return counter.get_total_flops() / 2e9  # multiply-adds, as the table counts them


def rough_epoch_seconds(config: RunConfig, *, n_train: int, device: DeviceKind, teacher_arch: str | None) -> float:
    """An epoch from arithmetic alone: training passes over ``n_train`` images, the teacher's forward
    pass on each, and one evaluation pass over the validation hold-out."""
    size = config.data.image_size if device == "cuda" else max(config.data.image_size, SMALLEST_PRICED_SIZE)
    scale = (size / 224) ** 2
    train = 3 * forward_gflops(config.model.arch) + (forward_gflops(teacher_arch) if teacher_arch else 0.0)
    n_valid = n_train * config.data.valid_fraction / (1 - config.data.valid_fraction)
    gflop = scale * (n_train * train + n_valid * forward_gflops(config.model.arch))
    return gflop / RATE[device]


def estimate_runs(
    *,
    session: Session,
    configs: Sequence[tuple[RunConfig, str | None]],
    n_train: int,
    device: DeviceKind,
    parallel: int,
) -> Estimate:
    """The wall time of training ``configs`` (each with its teacher's arch, or None), spread over
    ``parallel`` devices of kind ``device``."""
    history = _history(session)
    total, known = 0.0, 0
    for config, teacher_arch in configs:
        past = history.get((_speed_key(config, distils=teacher_arch is not None), device))
        if past:
            epoch = statistics.median(past)
            known += 1
        else:
            epoch = rough_epoch_seconds(config, n_train=n_train, device=device, teacher_arch=teacher_arch)
        total += START_SECONDS[device] + config.epochs * epoch
    where = f"{parallel} GPU{'s' if parallel > 1 else ''}" if device == "cuda" else "the CPU"
    if not configs:
        basis = "nothing to train: every run is reused"
    elif known == len(configs):
        basis = f"from the epoch times of earlier runs of the same size, on {where}"
    else:
        rough = "a rough figure from each model's arithmetic"
        basis = (
            f"{rough} on {where}"
            if not known
            else f"{known} of {len(configs)} runs from earlier runs of the same size, the rest {rough}, on {where}"
        )
    return Estimate(total / max(parallel, 1), len(configs), device, max(parallel, 1), known, basis)
