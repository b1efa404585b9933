"""The report's summary table for a set of runs, derived in one place so the page, the API and the CSV agree.

One row per run with top-1/top-5 taken at the peak epoch (the highest validation top-1, what the
report tabulates) or at the final epoch, deltas in points against a baseline run, and the test
figures of the checkpoint the trainer kept (the lowest validation loss), each with its epoch.
Replicates (runs whose configs differ in the seed alone) form one configuration, which the page
draws in one colour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Protocol

from backend.reports.labels import logged_lr_groups, trick_summary, tricks_on
from backend.reports.numbers import delta_between, with_delta
from backend.reports.spreadsheet import to_csv
from backend.schemas.compare import CompareRow, Mode
from trainer.config import RunConfig


# Read-only members, so that an ORM row and a pydantic model with narrower types both qualify.
class EpochValues(Protocol):
    @property
    def run_id(self) -> int: ...
    @property
    def epoch(self) -> int: ...
    @property
    def valid_top1(self) -> float | None: ...
    @property
    def valid_top5(self) -> float | None: ...


class RunValues(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def config(self) -> RunConfig: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def epochs(self) -> int: ...
    @property
    def seconds_per_epoch(self) -> float | None: ...
    @property
    def test_top1(self) -> float | None: ...
    @property
    def test_top5(self) -> float | None: ...
    @property
    def checkpoint_epoch(self) -> int | None: ...
    @property
    def images_per_s(self) -> float | None: ...
    @property
    def data_wait_share(self) -> float | None: ...
    @property
    def data_wait_hint(self) -> str | None: ...


def pick_epoch(metrics: Sequence[EpochValues], mode: Mode) -> EpochValues | None:
    """The peak epoch (highest valid top-1, earliest on a tie) or the last one; None before any epoch."""
    if mode == "final":
        return max(metrics, key=lambda m: m.epoch, default=None)
    scored = [m for m in metrics if m.valid_top1 is not None]
    return max(scored, key=lambda m: (m.valid_top1, -m.epoch), default=None)


def configuration_key(config: RunConfig) -> str:
    """What replicates share: the config fingerprint with the seed left out."""
    return config.model_copy(update={"seed": 0}).fingerprint()


def default_baseline(runs: Sequence[RunValues]) -> int:
    """The run the deltas are measured against when none is chosen: the one with the fewest tricks,
    ties going to the oldest. A run that teaches another of the compared runs is no candidate
    (unless every run is one): a teacher is the students' source, not their reference."""
    ids = {run.id for run in runs}
    teachers = {run.config.tricks.kd.teacher for run in runs} & ids
    candidates = [run for run in runs if run.id not in teachers] or list(runs)
    return min(candidates, key=lambda run: (len(tricks_on(run.config)), run.created_at, run.id)).id


def compare_rows(
    runs: Sequence[RunValues],
    metrics: Iterable[EpochValues],
    *,
    baseline_id: int,
    mode: Mode,
) -> list[CompareRow]:
    """One row per run, in the order given; ``metrics`` holds every run's epochs (with ``run_id``)."""
    by_run: dict[int, list[EpochValues]] = {}
    for metric in metrics:
        by_run.setdefault(metric.run_id, []).append(metric)
    picked = {run.id: pick_epoch(by_run.get(run.id, []), mode) for run in runs}
    base = picked.get(baseline_id)
    base_top1 = base.valid_top1 if base else None
    base_top5 = base.valid_top5 if base else None

    rows = []
    for run in runs:
        epoch = picked[run.id]
        config = run.config
        is_baseline = run.id == baseline_id
        top1 = epoch.valid_top1 if epoch else None
        top5 = epoch.valid_top5 if epoch else None
        top1_delta = None if is_baseline else delta_between(top1, base_top1)
        top5_delta = None if is_baseline else delta_between(top5, base_top5)
        rows.append(
            CompareRow(
                run_id=run.id,
                name=run.name,
                status=run.status,
                tricks=trick_summary(config),
                configuration=configuration_key(config),
                seed=config.seed,
                is_baseline=is_baseline,
                epochs=run.epochs,
                epoch=epoch.epoch if epoch else None,
                top1=top1,
                top5=top5,
                top1_delta=top1_delta,
                top5_delta=top5_delta,
                top1_text=with_delta(top1, top1_delta),
                top5_text=with_delta(top5, top5_delta),
                checkpoint_epoch=run.checkpoint_epoch,
                test_top1=run.test_top1,
                test_top5=run.test_top5,
                lr_groups=logged_lr_groups(config),
                seconds_per_epoch=run.seconds_per_epoch,
                images_per_s=run.images_per_s,
                data_wait_share=run.data_wait_share,
                data_wait_hint=run.data_wait_hint,
            )
        )
    return rows


CSV_COLUMNS = (
    "run_id",
    "name",
    "tricks",
    "seed",
    "status",
    "epoch",
    "top1",
    "top1_delta",
    "top5",
    "top5_delta",
    "checkpoint_epoch",
    "test_top1",
    "test_top5",
    "seconds_per_epoch",
    "images_per_s",
    "data_wait_share",
)


def rows_to_csv(rows: Sequence[CompareRow]) -> str:
    return to_csv((asdict(row) for row in rows), CSV_COLUMNS)
