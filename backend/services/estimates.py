"""How long queued runs will take: from earlier runs of the same size where there are some, else a
rough figure from the model's arithmetic (the FLOPs table below) and the kind of device the workers
have. The server builds no model to count its FLOPs: a run of a model outside the table, with no
earlier run of its size, is left out of the figure, and the basis says so.

A run's epoch costs about the same whatever its tricks (mixup permutes within the batch; the
schedules cost nothing); what changes it is the model, the image size, the batch, the dataset,
distillation's teacher forward pass, and the device.
"""

from __future__ import annotations

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
    untimed: int  # runs left out of ``seconds``: no earlier run of their size and no FLOPs entry
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


def rough_epoch_seconds(
    config: RunConfig, *, n_train: int, device: DeviceKind, teacher_arch: str | None
) -> float | None:
    """An epoch from arithmetic alone: training passes over ``n_train`` images, the teacher's forward
    pass on each, and one evaluation pass over the validation hold-out; None when a model has no
    FLOPs entry (the server builds no model to count them)."""
    student = GFLOPS.get(config.model.arch)
    teacher = GFLOPS.get(teacher_arch) if teacher_arch else 0.0
    if student is None or teacher is None:
        return None
    size = config.data.image_size if device == "cuda" else max(config.data.image_size, SMALLEST_PRICED_SIZE)
    scale = (size / 224) ** 2
    n_valid = n_train * config.data.valid_fraction / (1 - config.data.valid_fraction)
    gflop = scale * (n_train * (3 * student + teacher) + n_valid * student)
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
    total, known, rough = 0.0, 0, 0
    unpriced: set[str] = set()
    for config, teacher_arch in configs:
        past = history.get((_speed_key(config, distils=teacher_arch is not None), device))
        epoch = (
            statistics.median(past)
            if past
            else rough_epoch_seconds(config, n_train=n_train, device=device, teacher_arch=teacher_arch)
        )
        if epoch is None:
            unpriced.update(arch for arch in (config.model.arch, teacher_arch) if arch and arch not in GFLOPS)
            continue
        known, rough = (known + 1, rough) if past else (known, rough + 1)
        total += START_SECONDS[device] + config.epochs * epoch
    where = f"{parallel} GPU{'s' if parallel > 1 else ''}" if device == "cuda" else "the CPU"
    basis = _basis(runs=len(configs), known=known, rough=rough, unpriced=sorted(unpriced), where=where)
    untimed = len(configs) - known - rough
    return Estimate(total / max(parallel, 1), len(configs), device, max(parallel, 1), known, untimed, basis)


def _basis(*, runs: int, known: int, rough: int, unpriced: Sequence[str], where: str) -> str:
    """One sentence: where the figure comes from, and which runs it leaves out."""
    if not runs:
        return "nothing to train: every run is reused"
    rough_text = "a rough figure from each model's arithmetic"
    timed = known + rough
    if not rough:
        basis = f"from the epoch times of earlier runs of the same size, on {where}"
    elif not known:
        basis = f"{rough_text} on {where}"
    else:
        basis = f"{known} of {timed} runs from earlier runs of the same size, the rest {rough_text}, on {where}"
    if timed == runs:
        return basis
    one = len(unpriced) == 1
    missing = (
        f"no rough figure for {', '.join(unpriced)}: no earlier run of {'its' if one else 'their'} size and no "
        f"FLOPs entry; {'it' if one else 'they'} will be timed after {'its' if one else 'their'} first epoch"
    )
    return missing if not timed else f"{basis}; {runs - timed} of {runs} runs left out, {missing}"
