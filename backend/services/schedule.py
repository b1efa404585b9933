"""The learning rate of each layer group per step, before launching.

It runs the trainer's own schedule code on the submitted config, so what the launch page plots is
what the run will do. The number of steps per epoch comes from the configured dataset's split; when
that dataset cannot be read here, the real CUB-200-2011 split sizes stand in, and the answer says so.

The GPU memory a training step takes, and a warning when no living worker's GPU holds it, come from
``gpu_memory``. ``batch_fit`` says what a batch does to that split, as the trainer will train it: a batch larger than
the split trains one partial step per epoch, and with ``runtime.compile`` (full batches only) the
last partial batch of each epoch is left out, or, where no full batch fits, nothing trains at all.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from backend.services.errors import InvalidConfig
from backend.services.gpu_memory import check_memory, teacher_arch
from backend.services.workers import list_workers
from backend.settings import Settings
from trainer.config import ConfigError, RunConfig
from trainer.data.cub import DatasetError, kept_for_training, train_split_size
from trainer.tricks.schedules import schedule_preview

# Train + validation images of the real CUB-200-2011 before the validation hold-out: the seed split
# keeps int(0.8 n) of each class (9,410 of 11,788, the reference notebook's 8,469 + 941), the
# official split the archive's 5,994.
CUB_TRAIN_POOL = {"seed": 9410, "official": 5994}
# The share of the training split left out of each epoch (runtime.compile's full batches) worth a warning.
LEFT_OUT_WARNING = 0.1
MEMORY_FIELDS = ("gib", "gpus", "largest_gpu_gib", "basis")  # the warning joins the others


def preview_schedule(*, session: Session, settings: Settings, config: dict[str, Any]) -> dict[str, Any]:
    """Steps, their epochs and each group's lr, and the GPU memory a step takes on the living workers;
    InvalidConfig names the fields of a bad config."""
    try:
        run_config = RunConfig.from_dict(config)
    except ConfigError as error:
        raise InvalidConfig(error.errors) from None
    n_train, source = train_size(run_config, data_roots=settings.data_roots)
    warning = batch_fit(run_config, n_train=n_train)
    steps_per_epoch = steps_of(run_config, n_train=n_train)
    fleet = list_workers(session=session, stale_after_seconds=settings.stale_after_seconds)
    memory = check_memory(run_config, workers=fleet.data, teacher_arch=teacher_arch(session, run_config))
    return {
        **schedule_preview(run_config, steps_per_epoch=steps_per_epoch),
        "n_train": n_train,
        "steps_per_epoch": steps_per_epoch,
        "steps_per_epoch_source": source,
        "gpu_memory": None if memory is None else {key: getattr(memory, key) for key in MEMORY_FIELDS},
        "warnings": [found for found in (warning, memory and memory.warning) if found],
    }


def steps_of(config: RunConfig, *, n_train: int) -> int:
    """Training steps per epoch: the last partial batch is trained, except with ``runtime.compile``."""
    batches = n_train / config.batch_size
    return math.floor(batches) if config.runtime.compile else math.ceil(batches)


def batch_fit(config: RunConfig, *, n_train: int) -> str | None:
    """A warning when the batch is larger than the training split, or when the full batches that
    ``runtime.compile`` trains leave out a large share of it; InvalidConfig naming batch_size where no
    full batch fits (the trainer would stop with this message)."""
    batch = config.batch_size
    if config.runtime.compile:
        if batch > n_train:
            raise InvalidConfig(
                {
                    "batch_size": f"runtime.compile trains on full batches only, and batch_size {batch} is more "
                    f"than the {n_train} training images: lower batch_size or turn runtime.compile off"
                }
            )
        left_out = n_train % batch
        if left_out / n_train >= LEFT_OUT_WARNING:
            return (
                f"batch_size {batch} leaves {left_out} of the {n_train} training images out of each epoch "
                f"({left_out / n_train:.0%}): runtime.compile trains full batches only"
            )
        return None
    if batch > n_train:
        return (
            f"batch_size {batch} is larger than the training split ({n_train} images): each epoch is one "
            f"step of {n_train} images"
        )
    return None


def train_size(config: RunConfig, *, data_roots: Sequence[Path]) -> tuple[int, str]:
    """(training images, where the number comes from: "dataset" or "assumed CUB"); InvalidConfig when
    the hold-out leaves none.

    Only folders a run may read (the data roots) are looked at, as the runs API checks too.
    """
    data = config.data
    root = Path(data.root).expanduser().resolve()
    n_train, source = None, "dataset"
    if any(root.is_relative_to(allowed) for allowed in data_roots):
        with contextlib.suppress(DatasetError, OSError):
            n_train = _dataset_train_size(str(root), data.split, data.valid_fraction)
    if n_train is None:
        n_train, source = kept_for_training(CUB_TRAIN_POOL[data.split], data.valid_fraction), "assumed CUB"
    if n_train == 0:
        raise InvalidConfig(
            {"data.valid_fraction": f"holds out every training image ({source}): no step is left to schedule"}
        )
    return n_train, source


@lru_cache(maxsize=16)
def _dataset_train_size(root: str, split: str, valid_fraction: float) -> int:
    # Cached: reading the index stats every image file. Failures are not cached, so a dataset
    # that appears later is picked up.
    return train_split_size(root, split=split, valid_fraction=valid_fraction)
