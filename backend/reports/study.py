"""A study's report: per group the mean and spread over seeds, the delta to the baseline group with
Welch's interval and p-value, the report's own numbers beside them; the CSV; mean curves with bands;
and the notes on how to read its groups.

The functions take the study's spec (its groups and their runs) and the rows the study service
read; they query nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from backend.models import RunStatus
from backend.reports import stats
from backend.reports.numbers import delta_between, format_number, format_p, format_signed, with_delta
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
from backend.schemas.study_spec import PAPER_PRESET, SEED_PRESET, StudyGroup, StudySpec

CURVE_FIELDS = ("train_loss", "valid_top1", "valid_top5", "lr")
METHOD = "Welch's t (unequal variances), two-sided"
# The published numbers a preset's rows quote: a column title, and how to read them.
REFERENCES: Mapping[str, tuple[str, str]] = {
    SEED_PRESET: (
        "Report (top-1)",
        "Report: the student report's peak validation top-1 on CUB-200-2011 (one seed per run), its delta "
        "against its own base run.",
    ),
    PAPER_PRESET: (
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


# Why no delta of the table has an interval, when every one of them lacks it for the same reason: said
# once above the table (``StudyTable.note``) instead of in every row.
TABLE_NOTES: Mapping[str, str] = {
    stats.ONE_SEED: "No delta has an interval: each compares a single seed on one side or both, and an interval "
    "needs two or more finished seeds in the group and in the baseline.",
    stats.NO_SPREAD: "No delta has an interval: every group's seeds gave the same result, so there is no spread "
    "across seeds to measure the noise by.",
}


def metric_stats(
    values: Sequence[float], baseline: Sequence[float], *, is_baseline: bool, said_once: str | None = None
) -> MetricStats:
    """One metric of one group against the baseline group, with the texts the page and CSV show.

    ``said_once``: why there is no interval, when the table says it once for every row (TABLE_NOTES);
    ``delta_text`` then leaves it out. ``verdict`` keeps it, for the CSV and scripts.
    """
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
        delta_text = "–" if delta is None else f"{format_signed(delta)}p"
        if delta is not None and comparison.note != said_once:
            delta_text += f" ({comparison.note})"
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
    spec: StudySpec,
    runs: Mapping[int, RunValues],
    seconds_per_epoch: Mapping[int, float | None],
    peak_epochs: Mapping[int, tuple[float | None, float | None]],
    *,
    study_id: int,
    metric: Metric = "valid",
) -> StudyTable:
    """One row per group: mean +/- std over seeds, delta to the baseline with a 95 % interval and p.

    ``runs`` are the study's runs that still exist, by id; ``seconds_per_epoch`` their mean epoch
    times; ``peak_epochs`` their valid top-1 and top-5 at the peak epoch (``compare.pick_epoch``).
    """

    def result(run_id: int, index: int) -> float | None:
        run = runs[run_id]
        if metric == "valid":
            return peak_epochs.get(run_id, (None, None))[index]
        return run.test_top1 if index == 0 else run.test_top5

    def values(group: StudyGroup, index: int) -> list[float]:
        ids = [run.run_id for run in sorted(group.runs, key=lambda run: run.seed)]
        finished = [run_id for run_id in ids if run_id in runs and runs[run_id].status == RunStatus.succeeded]
        return [value for run_id in finished if (value := result(run_id, index)) is not None]

    reference_column, reference = REFERENCES[spec.preset] if spec.preset else (None, None)
    base_group = spec.baseline_group
    base1, base5 = values(base_group, 0), values(base_group, 1)
    said_once = _shared_reason(
        [(values(group, 0), base1) for group in spec.groups if group is not base_group]
        + [(values(group, 1), base5) for group in spec.groups if group is not base_group]
    )
    rows = []
    for group in spec.groups:
        is_baseline = group is base_group
        ids = [run.run_id for run in group.runs]
        timings = [seconds for seconds in map(seconds_per_epoch.get, ids) if seconds is not None]
        rows.append(
            StudyTableRow(
                group=group.key,
                title=group.title,
                tricks=group.tricks,
                role=group.role,
                is_baseline=is_baseline,
                run_ids=ids,
                runs=len(ids),
                succeeded=sum(runs[i].status == RunStatus.succeeded for i in ids if i in runs),
                top1=metric_stats(values(group, 0), base1, is_baseline=is_baseline, said_once=said_once),
                top5=metric_stats(values(group, 1), base5, is_baseline=is_baseline, said_once=said_once),
                report_top1=group.reported_top1,
                report_top5=group.reported_top5,
                report=_report_text(group, base_group, is_baseline=is_baseline),
                seconds_per_epoch=math.fsum(timings) / len(timings) if timings else None,
            )
        )
    return StudyTable(
        study_id=study_id,
        metric=metric,
        baseline=spec.baseline,
        confidence=stats.CONFIDENCE,
        method=METHOD,
        reference_column=reference_column,
        reference=reference,
        note=TABLE_NOTES[said_once] if said_once else None,
        data=rows,
        count=len(rows),
    )


def _shared_reason(comparisons: Sequence[tuple[Sequence[float], Sequence[float]]]) -> str | None:
    """The reason every comparison with a delta has no interval (ONE_SEED, say), when they share one."""
    reasons = {stats.why_no_interval(sample, baseline) for sample, baseline in comparisons} - {stats.NO_VALUES}
    return next(iter(reasons)) if len(reasons) == 1 else None


def _report_text(group: StudyGroup, base: StudyGroup, *, is_baseline: bool) -> str | None:
    """The published top-1, in the report's style: "79.13 (+0.60p)" against its own base row."""
    value = group.reported_top1
    if value is None:
        return None
    return with_delta(value, None if is_baseline else delta_between(value, base.reported_top1))


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


def study_curves(
    spec: StudySpec, runs: Mapping[int, RunValues], epoch_rows: Mapping[int, Sequence[Any]], *, study_id: int
) -> StudyCurves:
    """Per group and epoch, the mean and std over the group's runs of the four charted metrics.

    ``epoch_rows`` holds each run's epoch rows by run id. Failed and cancelled runs are left out:
    a partial curve would bend the band where it stops.
    """
    kept = {run_id: run for run_id, run in runs.items() if run.status not in (RunStatus.failed, RunStatus.cancelled)}
    data = []
    for group in spec.groups:
        metrics = [row for run in group.runs if run.run_id in kept for row in epoch_rows.get(run.run_id, [])]
        data.append(
            GroupCurves(
                group=group.key,
                title=group.title,
                is_baseline=group.key == spec.baseline,
                **{name: curve_band(metrics, name) for name in CURVE_FIELDS},
            )
        )
    epochs = max((run.config["epochs"] for run in kept.values()), default=0)
    return StudyCurves(study_id=study_id, epochs=epochs, data=data, count=len(data))


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


# --- notes --------------------------------------------------------------------------------------

PRESET_COMBINATION = (
    "Label smoothing meets distillation as in the report: g, h, i1 and i2 train an unsmoothed student "
    "(a plain cross-entropy task term) from T-LS, the teacher trained with label smoothing."
)
GRID_COMBINATION = (
    "In this grid a group with both label smoothing and KD smooths the student's own task term and learns "
    "from a teacher trained with the same smoothing (the paper's combination). The report's g, h, i1 and i2 "
    "smooth only their teacher: the seed preset has them."
)
PAPER_NOTE = (
    "The paper study trains every row from scratch, since zero-init of the last BN gamma needs it (ImageNet "
    "weights would also make that row change two things), with SGD at 0.1 (momentum 0.9, weight decay 1e-4) "
    "and one rate for every layer. Its baseline keeps a constant rate: the paper steps its rate down, which "
    "has no schedule here, and warmup needs cosine or constant (OneCycle has its own). Each row then adds one "
    "refinement, with the paper's settings: linear scaling and 5 warmup epochs, zero-init, no bias decay, "
    "ResNet-D, cosine, label smoothing 0.1, mixup alpha 0.2, and KD at T = 20 (alpha 0.5: the paper weighs "
    "its two terms equally) from a ResNet-D teacher trained with every refinement before KD; the student "
    "keeps label smoothing under KD, as the paper's does. Every row trains the same epochs."
)


def study_notes(spec: StudySpec) -> list[str]:
    """How to read a study's groups (how label smoothing meets distillation; for the paper study,
    how its recipe meets the config's rules), for the study page's footnote."""
    if spec.kind == "preset":
        return [PAPER_NOTE if spec.preset == PAPER_PRESET else PRESET_COMBINATION]
    switches = spec.grid.switches if spec.grid else {}
    smoothed = {"label_smoothing", "tricks.label_smoothing"} & set(switches) or spec.overrides.get(
        "tricks.label_smoothing"
    )
    return [GRID_COMBINATION] if "kd" in switches and smoothed else []
