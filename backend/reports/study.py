"""A study's report: per group the mean and spread over seeds, the delta to the baseline group with
Welch's interval and p-value, the report's own numbers beside them; the CSV; and mean curves with bands.

The functions take the study (its ``spec`` holds the groups and their runs) and the rows the study
service read; they query nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from backend.models import RunStatus, Study
from backend.reports import stats
from backend.reports.numbers import format_number, format_p, format_signed, points_between, with_delta
from backend.reports.spreadsheet import to_csv
from backend.schemas.studies import (
    CurveBand,
    GroupCurves,
    Metric,
    MetricStats,
    StudyCurves,
    StudyTable,
    StudyTableRow,
)

# The report tabulates the best validation accuracy: top-1 and top-5 of the epoch with the highest
# validation top-1, as the compare table and the runs list take them. Test is measured on the
# checkpoint the trainer kept (the lowest validation loss), the figure a paper should quote.
METRIC_LABELS: Mapping[Metric, str] = {
    "valid": "best epoch (highest valid top-1)",
    "test": "test, kept checkpoint (lowest valid loss)",
}
CURVE_FIELDS = ("train_loss", "valid_top1", "valid_top5", "lr")
METHOD = "Welch's t (unequal variances), two-sided"
# The published numbers a preset's rows quote: a column title, and how to read them.
REFERENCES: Mapping[str, tuple[str, str]] = {
    "seed": (
        "Report (top-1)",
        "Report: the student report's best-validation top-1 on CUB-200-2011 (one seed per run), its delta "
        "against its own base run.",
    ),
    "paper": (
        "Paper, ImageNet (top-1)",
        "Paper: He et al., Bag of Tricks (CVPR 2019), top-1 on ImageNet with ResNet-50, a different dataset "
        "(and training from scratch for 120 epochs or more): read it beside these numbers, not against them. "
        "Only the baseline (75.3) and all refinements (79.29) are quoted; the other rows are left empty, not zero.",
    ),
}


class RunValues(Protocol):
    """A run as the report reads it: its status, config and test result."""

    # Read-only, so that the ORM row's Mapped columns qualify.
    @property
    def status(self) -> RunStatus: ...
    @property
    def config(self) -> Mapping[str, Any]: ...
    @property
    def test_top1(self) -> float | None: ...
    @property
    def test_top5(self) -> float | None: ...


# --- the table ----------------------------------------------------------------------------------


def metric_stats(values: Sequence[float], baseline: Sequence[float], *, is_baseline: bool) -> MetricStats:
    """One metric of one group against the baseline group, with the texts the page and CSV show."""
    own = stats.spread(values)
    text = (
        format_number(own.mean)
        if own.mean is None or own.std is None
        else f"{format_number(own.mean)} ± {format_number(own.std)}"
    )
    comparison = stats.Comparison(None) if is_baseline else stats.welch(values, baseline)
    delta, low, high, p_value = comparison.delta, comparison.low, comparison.high, comparison.p_value
    if is_baseline:
        verdict = delta_text = "baseline"
    elif delta is None or low is None or high is None or p_value is None:
        verdict = comparison.note or stats.NO_VALUES
        delta_text = "–" if delta is None else f"{format_signed(delta)}p ({comparison.note})"
    else:
        verdict = "within noise" if comparison.within_noise else "helped" if delta > 0 else "hurt"
        delta_text = f"{format_signed(delta)}p [{format_signed(low)}, {format_signed(high)}] {format_p(p_value)}"
    return MetricStats(
        values=list(values),
        n=own.n,
        mean=own.mean,
        std=own.std,
        delta=comparison.delta,
        ci_low=comparison.low,
        ci_high=comparison.high,
        p_value=comparison.p_value,
        df=comparison.df,
        within_noise=comparison.within_noise,
        verdict=verdict,
        text=text,
        delta_text=delta_text,
    )


def study_table(
    study: Study,
    runs: Mapping[int, RunValues],
    seconds_per_epoch: Mapping[int, float | None],
    best_epochs: Mapping[int, tuple[float | None, float | None]],
    *,
    metric: Metric = "valid",
) -> StudyTable:
    """One row per group: mean +/- std over seeds, delta to the baseline with a 95 % interval and p.

    ``runs`` are the study's runs that still exist, by id; ``seconds_per_epoch`` their mean epoch
    times; ``best_epochs`` their valid top-1 and top-5 at the best epoch (``compare.pick_epoch``).
    """
    spec = study.spec

    def result(run_id: int, index: int) -> float | None:
        run = runs[run_id]
        if metric == "valid":
            return best_epochs.get(run_id, (None, None))[index]
        return run.test_top1 if index == 0 else run.test_top5

    def values(group: Mapping[str, Any], index: int) -> list[float]:
        ids = [run["run_id"] for run in sorted(group["runs"], key=lambda run: run["seed"])]
        finished = [run_id for run_id in ids if run_id in runs and runs[run_id].status == RunStatus.succeeded]
        return [value for run_id in finished if (value := result(run_id, index)) is not None]

    reference_column, reference = (
        REFERENCES.get(spec["preset"], (None, None)) if spec["kind"] == "preset" else (None, None)
    )
    base_group = next(group for group in spec["groups"] if group["key"] == spec["baseline"])
    base1, base5 = values(base_group, 0), values(base_group, 1)
    rows = []
    for group in spec["groups"]:
        is_baseline = group is base_group
        ids = [run["run_id"] for run in group["runs"]]
        timings = [seconds for seconds in map(seconds_per_epoch.get, ids) if seconds is not None]
        rows.append(
            StudyTableRow(
                group=group["key"],
                title=group["title"],
                tricks=group["tricks"],
                role=group["role"],
                is_baseline=is_baseline,
                run_ids=ids,
                runs=len(ids),
                succeeded=sum(runs[i].status == RunStatus.succeeded for i in ids if i in runs),
                top1=metric_stats(values(group, 0), base1, is_baseline=is_baseline),
                top5=metric_stats(values(group, 1), base5, is_baseline=is_baseline),
                report_top1=group["reported_top1"],
                report_top5=group["reported_top5"],
                report=_report_text(group, base_group, is_baseline=is_baseline),
                seconds_per_epoch=math.fsum(timings) / len(timings) if timings else None,
            )
        )
    return StudyTable(
        study_id=study.id,
        metric=metric,
        baseline=spec["baseline"],
        confidence=stats.CONFIDENCE,
        method=METHOD,
        reference_column=reference_column,
        reference=reference,
        data=rows,
        count=len(rows),
    )


def _report_text(group: Mapping[str, Any], base: Mapping[str, Any], *, is_baseline: bool) -> str | None:
    """The published top-1, in the report's style: "79.13 (+0.60p)" against its own base row."""
    value = group["reported_top1"]
    if value is None:
        return None
    return with_delta(value, None if is_baseline else points_between(value, base["reported_top1"]))


GROUP_COLUMNS = ("group", "title", "tricks", "role", "runs", "succeeded")
METRIC_PARTS = ("mean", "std", "n", "delta", "ci_low", "ci_high", "p_value", "verdict")
REPORT_COLUMNS = ("report", "report_top1", "report_top5", "seconds_per_epoch")
CSV_COLUMNS = (
    *GROUP_COLUMNS,
    *(f"{metric}_{part}" for metric in ("top1", "top5") for part in METRIC_PARTS),
    *REPORT_COLUMNS,
)


def table_csv(table: StudyTable) -> str:
    rows = []
    for row in table.data:
        values = row.model_dump(include={*GROUP_COLUMNS, *REPORT_COLUMNS})
        for name in ("top1", "top5"):
            metric = getattr(row, name)
            values.update({f"{name}_{part}": getattr(metric, part) for part in METRIC_PARTS})
        rows.append(values)
    return to_csv(rows, CSV_COLUMNS)


# --- curves -------------------------------------------------------------------------------------


def study_curves(study: Study, runs: Mapping[int, RunValues], epoch_rows: Mapping[int, Sequence[Any]]) -> StudyCurves:
    """Per group and epoch, the mean and std over the group's runs of the four charted metrics.

    ``epoch_rows`` holds each run's epoch rows by run id. Failed and cancelled runs are left out:
    a partial curve would bend the band where it stops.
    """
    spec = study.spec
    kept = {run_id: run for run_id, run in runs.items() if run.status not in (RunStatus.failed, RunStatus.cancelled)}
    data = []
    for group in spec["groups"]:
        metrics = [row for run in group["runs"] if run["run_id"] in kept for row in epoch_rows.get(run["run_id"], [])]
        data.append(
            GroupCurves(
                group=group["key"],
                title=group["title"],
                is_baseline=group["key"] == spec["baseline"],
                **{name: curve_band(metrics, name) for name in CURVE_FIELDS},
            )
        )
    epochs = max((run.config["epochs"] for run in kept.values()), default=0)
    return StudyCurves(study_id=study.id, epochs=epochs, data=data, count=len(data))


def curve_band(rows: Iterable[Any], name: str) -> CurveBand:
    """Mean and std of ``name`` over the rows of each epoch (one row per run and epoch)."""
    by_epoch: dict[int, list[float]] = {}
    for row in rows:
        value = getattr(row, name)
        if value is not None:
            by_epoch.setdefault(row.epoch, []).append(value)
    epochs = sorted(by_epoch)
    spreads = [stats.spread(by_epoch[epoch]) for epoch in epochs]
    return CurveBand(
        epoch=epochs, mean=[s.mean for s in spreads], std=[s.std for s in spreads], n=[s.n for s in spreads]
    )
