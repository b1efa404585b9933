"""The report's summary table for a set of runs, derived in one place so the page, the API and the CSV agree.

One row per run with top-1/top-5 taken at the best-validation epoch (what the report tabulates) or
at the final epoch, and deltas in points against a baseline run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from backend.reports.labels import trick_summary
from backend.reports.spreadsheet import to_csv
from trainer.config import RunConfig

Mode = Literal["best", "final"]
MODES: tuple[Mode, ...] = ("best", "final")


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
    def config(self) -> Mapping[str, Any]: ...
    @property
    def epochs(self) -> int: ...
    @property
    def seconds_per_epoch(self) -> float | None: ...


def pick_epoch(metrics: Sequence[EpochValues], mode: Mode) -> EpochValues | None:
    """The best-validation-top-1 epoch (earliest on a tie) or the last one; None before any epoch."""
    if mode == "final":
        return max(metrics, key=lambda m: m.epoch, default=None)
    scored = [m for m in metrics if m.valid_top1 is not None]
    return max(scored, key=lambda m: (m.valid_top1, -m.epoch), default=None)


def delta_points(value: float | None, baseline: float | None) -> float | None:
    """The difference in points between the rounded values, so that it adds up on screen."""
    if value is None or baseline is None:
        return None
    return round(round(value, 2) - round(baseline, 2), 2)


def with_delta(value: float | None, delta: float | None) -> str:
    """ "81.55 (+3.02p)", or "81.55" without a delta, or "–" without a value."""
    if value is None:
        return "–"
    return f"{value:.2f}" if delta is None else f"{value:.2f} ({delta:+.2f}p)"


@dataclass(frozen=True)
class CompareRow:
    run_id: int
    name: str
    status: str
    tricks: str
    is_baseline: bool
    epochs: int
    epoch: int | None
    top1: float | None
    top5: float | None
    top1_delta: float | None
    top5_delta: float | None
    top1_text: str
    top5_text: str
    seconds_per_epoch: float | None


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
        is_baseline = run.id == baseline_id
        top1 = epoch.valid_top1 if epoch else None
        top5 = epoch.valid_top5 if epoch else None
        top1_delta = None if is_baseline else delta_points(top1, base_top1)
        top5_delta = None if is_baseline else delta_points(top5, base_top5)
        rows.append(
            CompareRow(
                run_id=run.id,
                name=run.name,
                status=run.status,
                tricks=trick_summary(RunConfig.model_validate(run.config)),
                is_baseline=is_baseline,
                epochs=run.epochs,
                epoch=epoch.epoch if epoch else None,
                top1=top1,
                top5=top5,
                top1_delta=top1_delta,
                top5_delta=top5_delta,
                top1_text=with_delta(top1, top1_delta),
                top5_text=with_delta(top5, top5_delta),
                seconds_per_epoch=run.seconds_per_epoch,
            )
        )
    return rows


CSV_COLUMNS = (
    "run_id",
    "name",
    "tricks",
    "status",
    "epoch",
    "top1",
    "top1_delta",
    "top5",
    "top5_delta",
    "seconds_per_epoch",
)


def rows_to_csv(rows: Sequence[CompareRow]) -> str:
    return to_csv((asdict(row) for row in rows), CSV_COLUMNS)
