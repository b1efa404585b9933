"""What the comparison shows about a run, derived in one place so the page, the API and the CSV agree.

- ``trick_summary``: the report's way of naming a run, "+Cosine +LS +KD (teacher #7)".
- ``compare_rows``: the summary table, one row per run with top-1/top-5 taken at the best-validation
  epoch (what the report tabulates) or at the final epoch, and deltas in points against a baseline.
- ``teacher_choices``: finished runs that can teach, the one the report would have picked first.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Literal, Protocol

from trainer.config import ARCHS, RunConfig

Mode = Literal["best", "final"]
MODES: tuple[Mode, ...] = ("best", "final")


class EpochValues(Protocol):
    run_id: int
    epoch: int
    valid_top1: float | None
    valid_top5: float | None


class RunValues(Protocol):
    id: int
    name: str
    status: str
    config: Mapping
    epochs: int
    seconds_per_epoch: float | None


class TeacherCandidate(Protocol):
    id: int
    name: str
    config: Mapping
    max_valid_top1: float | None


def _arch_label(arch: str) -> str:
    return "ResNet" + arch.removeprefix("resnet")


def _teacher_label(teacher: str | int) -> str:
    # Through the API a teacher is a run id; from the CLI it is a run folder.
    return f"#{teacher}" if isinstance(teacher, int) else PurePath(teacher).name


def trick_summary(config: RunConfig) -> str:
    """The tricks a run adds to the report's base run, e.g. "ResNet152 +Cosine +LS"; "base" if none."""
    parts: list[str] = []
    if config.model.arch != "resnet50":
        parts.append(_arch_label(config.model.arch))
    if not config.model.pretrained:
        parts.append("from scratch")
    if config.schedule.name != "onecycle":
        parts.append("+Cosine" if config.schedule.name == "cosine" else "+Constant LR")
    if config.schedule.warmup_epochs:
        parts.append(f"+Warmup {config.schedule.warmup_epochs:g}ep")
    tricks = config.tricks
    if tricks.label_smoothing:
        # The report's epsilon is 0.1; only other values need spelling out.
        parts.append("+LS" if tricks.label_smoothing == 0.1 else f"+LS {tricks.label_smoothing:g}")
    if tricks.kd.teacher is not None:
        parts.append(f"+KD (teacher {_teacher_label(tricks.kd.teacher)})")
    if tricks.mixup_alpha:
        parts.append(f"+Mixup α={tricks.mixup_alpha:g}")
    if config.model.zero_init_residual:
        parts.append("+Zero-γ")
    if config.optim.no_bias_decay:
        parts.append("+No bias decay")
    return " ".join(parts) or "base"


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


def _as_text(cell: str) -> str:
    # A spreadsheet reads "+LS" or a run named "=HYPERLINK(...)" as a formula; a leading quote keeps it text.
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def rows_to_csv(rows: Sequence[CompareRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**asdict(row), "name": _as_text(row.name), "tricks": _as_text(row.tricks)})
    return out.getvalue()


@dataclass(frozen=True)
class TeacherChoice:
    id: int
    name: str
    label: str
    label_smoothing: float


def teacher_choices(runs: Sequence[TeacherCandidate], *, label_smoothing: float) -> tuple[list[TeacherChoice], str]:
    """Finished runs as teachers, the suggested one first, and a sentence saying why.

    As in the report, a student with label smoothing learns from a teacher trained with it (T-LS) and
    one without from a teacher without it (T); then the deeper network, then the better one.
    """
    student_ls = label_smoothing > 0
    configs = {run.id: RunConfig.model_validate(run.config) for run in runs}

    def rank(run: TeacherCandidate) -> tuple:
        config = configs[run.id]
        same_ls = (config.tricks.label_smoothing > 0) == student_ls
        return (same_ls, ARCHS.index(config.model.arch), run.max_valid_top1 or 0.0, run.id)

    choices = []
    for run in sorted(runs, key=rank, reverse=True):
        config = configs[run.id]
        accuracy = f", valid top-1 {run.max_valid_top1:.2f}" if run.max_valid_top1 is not None else ""
        choices.append(
            TeacherChoice(
                run.id,
                run.name,
                f"#{run.id} {run.name} ({trick_summary(config)}{accuracy})",
                config.tricks.label_smoothing,
            )
        )
    if not choices:
        wanted = "T-LS, trained with label smoothing" if student_ls else "T"
        return [], f"No finished run yet: train a teacher first (preset {wanted})."
    best = choices[0]
    if (best.label_smoothing > 0) == student_ls:
        like = (
            "with label smoothing, like this student (the report's T-LS)"
            if student_ls
            else "without label smoothing, like this student (the report's T)"
        )
        return choices, f"Suggested: #{best.id}, trained {like}."
    if student_ls:
        return choices, (
            "No finished run was trained with label smoothing; the report gave LS students the T-LS teacher."
        )
    return choices, (
        "Every finished run was trained with label smoothing; the report gave students without LS the T teacher."
    )
