"""How long queued runs will take: from what the workers measured on earlier runs like them, else a
rough figure from the model's arithmetic (the FLOPs table below); the basis says which.

Measured: each finished run of the same model, image size, pipeline and distillation (and
``runtime.compile``), trained on the device the living workers have (by its name, "2 CPU cores",
"NVIDIA H200"; any of the kind when no worker is alive), gives its training throughput (the epoch
rows' images/s, training passes only) and how far its wall time exceeded those passes (start-up,
evaluation, checkpoints and the test pass: started -> finished over the epochs' summed seconds). A
new run of E epochs over n training images takes E * n / images_per_s * that ratio, each the median
over the runs measured. Throughput, not the epoch time, carries over to another dataset size and batch.

The FLOPs table, used only where nothing was measured, once gave half the real time on a CPU (6 min
for a try-out that took 11): it is labelled rough. The server builds no model to count its FLOPs: a
run of a model outside the table, with nothing measured, is left out of the figure, and the basis says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import EpochMetric, Run, RunKind, RunStatus, Worker
from trainer.config import RunConfig

DeviceKind = Literal["cpu", "cuda"]
Source = Literal["measured", "mixed", "rough", "none"]
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
    from_history: int  # runs timed from what the workers measured
    untimed: int  # runs left out of ``seconds``: nothing measured and no FLOPs entry
    basis: str  # one sentence: where the figure comes from
    source: Source  # measured, rough (the FLOPs table), mixed, or none (nothing to time)


@dataclass(frozen=True)
class _Measured:
    images_per_s: float  # training passes only
    wall_ratio: float  # the run's wall time over its training passes' time


def _speed_key(config: RunConfig, *, distils: bool) -> tuple[Any, ...]:
    return (config.model.arch, config.data.image_size, config.data.pipeline, distils, config.runtime.compile)


def _measured(
    session: Session, *, device: DeviceKind, names: Collection[str | None]
) -> dict[tuple[Any, ...], list[_Measured]]:
    """What recent succeeded first attempts measured, by speed key, on a device of kind ``device``
    named in ``names`` (any of the kind when ``names`` is empty)."""
    trained_on = {worker.name: worker.devices[0] for worker in session.scalars(select(Worker)) if worker.devices}
    recent = session.execute(
        select(Run.id, Run.config, Run.worker, Run.started_at, Run.finished_at)
        # A resumed run's started_at is its last attempt's: its wall time would be short.
        .where(Run.status == RunStatus.succeeded, Run.kind == RunKind.training, Run.attempt == 1)
        .order_by(Run.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    timed = (
        {
            run_id: (images_per_s, seconds)
            for run_id, images_per_s, seconds in session.execute(
                select(EpochMetric.run_id, func.avg(EpochMetric.images_per_s), func.sum(EpochMetric.seconds))
                .where(
                    EpochMetric.run_id.in_([run.id for run in recent]),
                    EpochMetric.images_per_s > 0,
                    EpochMetric.seconds > 0,
                )
                .group_by(EpochMetric.run_id)
            )
        }
        if recent
        else {}
    )
    seen: dict[tuple[Any, ...], list[_Measured]] = {}
    for run_id, config, worker, started, finished in recent:
        on = trained_on.get(worker or "")
        if on is None or on["kind"] != device or (names and on.get("name") not in names):
            continue
        if started is None or finished is None or run_id not in timed:
            continue
        images_per_s, train_seconds = timed[run_id]
        run_config = RunConfig.model_validate(config)
        wall = (finished - started).total_seconds()
        key = _speed_key(run_config, distils=run_config.tricks.kd.teacher is not None)
        seen.setdefault(key, []).append(_Measured(float(images_per_s), max(wall / float(train_seconds), 1.0)))
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
    device_names: Collection[str | None] = (),
) -> Estimate:
    """The wall time of training ``configs`` (each with its teacher's arch, or None), spread over
    ``parallel`` devices of kind ``device``, named ``device_names`` (the living workers' devices)."""
    history = _measured(session, device=device, names=device_names)
    total, known, rough = 0.0, 0, 0
    unpriced: set[str] = set()
    used: dict[tuple[Any, ...], list[_Measured]] = {}
    for config, teacher_arch in configs:
        key = _speed_key(config, distils=teacher_arch is not None)
        past = history.get(key)
        if past:
            images_per_s = statistics.median(m.images_per_s for m in past)
            ratio = statistics.median(m.wall_ratio for m in past)
            total += config.epochs * n_train / images_per_s * ratio
            known += 1
            used[key] = past
            continue
        epoch = rough_epoch_seconds(config, n_train=n_train, device=device, teacher_arch=teacher_arch)
        if epoch is None:
            unpriced.update(arch for arch in (config.model.arch, teacher_arch) if arch and arch not in GFLOPS)
            continue
        rough += 1
        total += START_SECONDS[device] + config.epochs * epoch
    named = " and ".join(sorted({name for name in device_names if name}))
    if device == "cuda":
        where = f"{parallel} GPU{'s' if parallel > 1 else ''}" + (f" ({named})" if named else "")
    else:
        where = named or "the CPU"
    basis = _basis(runs=len(configs), known=known, rough=rough, unpriced=sorted(unpriced), where=where, measured=used)
    untimed = len(configs) - known - rough
    source: Source = "none" if not known + rough else "measured" if not rough else "rough" if not known else "mixed"
    return Estimate(total / max(parallel, 1), len(configs), device, max(parallel, 1), known, untimed, basis, source)


def _measured_text(measured: dict[tuple[Any, ...], list[_Measured]], where: str) -> str:
    """ "from 3 finished resnet18 runs at 64 px on 2 CPU cores (41 img/s)", one clause per kind of run."""
    parts = []
    for (arch, size, _pipeline, distils, _compile), past in measured.items():
        images_per_s = statistics.median(m.images_per_s for m in past)
        runs = f"{len(past)} finished {arch}{' +KD' if distils else ''} run{'s' if len(past) > 1 else ''}"
        parts.append(f"{runs} at {size} px ({images_per_s:.0f} img/s)")
    return f"from {', '.join(parts)} on {where}"


def _basis(
    *,
    runs: int,
    known: int,
    rough: int,
    unpriced: Sequence[str],
    where: str,
    measured: dict[tuple[Any, ...], list[_Measured]],
) -> str:
    """One sentence: where the figure comes from, and which runs it leaves out."""
    if not runs:
        return "nothing to train: every run is reused"
    rough_text = f"rough: from the FLOPs table, nothing measured yet on {where}"
    timed = known + rough
    if not rough:
        basis = _measured_text(measured, where)
    elif not known:
        basis = rough_text
    else:
        basis = (
            f"{known} of {timed} runs {_measured_text(measured, where)}; the other {rough} rough: from the FLOPs "
            "table, nothing measured yet for their size"
        )
    if timed == runs:
        return basis
    one = len(unpriced) == 1
    missing = (
        f"no figure for {', '.join(unpriced)}: nothing measured of {'its' if one else 'their'} size and no "
        f"FLOPs entry; {'it' if one else 'they'} will be timed after {'its' if one else 'their'} first epoch"
    )
    return missing if not timed else f"{basis}; {runs - timed} of {runs} runs left out, {missing}"
