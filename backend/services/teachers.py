"""The finished runs a distillation student can learn from, the one the report would have picked first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy.orm import Session

from backend.models import RunKind, RunStatus
from backend.reports.labels import trick_summary
from backend.reports.numbers import format_number
from backend.schemas.presets import TeacherChoice, TeachersPublic
from backend.services import run_listing
from trainer.config import ARCHS, RunConfig
from trainer.presets import TeacherKey

# More finished runs than anyone picks a teacher from in a list; the closest matches come first anyway.
TEACHER_LIMIT = 500


class TeacherCandidate(Protocol):
    # Read-only, so that the ORM row's Mapped columns qualify.
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def config(self) -> Mapping[str, Any]: ...
    @property
    def peak_valid_top1(self) -> float | None: ...


def list_teachers(*, session: Session, label_smoothing: float, teacher: TeacherKey | None = None) -> TeachersPublic:
    """Succeeded runs, the suggested teacher first: the one ``teacher`` names (a preset's T or T-LS),
    else one trained like the student, with or without label smoothing."""
    finished, _, _ = run_listing.list_runs(
        session=session,
        where=run_listing.Where(statuses=[RunStatus.succeeded], kinds=[RunKind.training]),
        limit=TEACHER_LIMIT,
    )
    choices, hint = teacher_choices(finished, label_smoothing=label_smoothing, teacher=teacher)
    return TeachersPublic(data=choices, count=len(choices), suggested_id=choices[0].id if choices else None, hint=hint)


def teacher_choices(
    runs: Sequence[TeacherCandidate], *, label_smoothing: float, teacher: TeacherKey | None = None
) -> tuple[list[TeacherChoice], str]:
    """Finished runs as teachers, the suggested one first, and a sentence saying why.

    A preset names its teacher: T, trained without label smoothing, or T-LS, trained with it (the
    report's g, h, i1 and i2 learn from T-LS with an unsmoothed student). Without a preset the
    teacher is trained like the student. Then the deeper network, then the better one.
    """
    smoothed = teacher == "T-LS" if teacher is not None else label_smoothing > 0
    configs = {run.id: RunConfig.model_validate(run.config) for run in runs}

    def rank(run: TeacherCandidate) -> tuple:
        config = configs[run.id]
        fits = (config.tricks.label_smoothing > 0) == smoothed
        depth = ARCHS.index(config.model.arch) if config.model.arch in ARCHS else -1  # short list: shallow to deep
        return (fits, depth, run.peak_valid_top1 or 0.0, run.id)

    choices = []
    for run in sorted(runs, key=rank, reverse=True):
        config = configs[run.id]
        accuracy = f", peak valid top-1 {format_number(run.peak_valid_top1)}" if run.peak_valid_top1 is not None else ""
        choices.append(
            TeacherChoice(
                id=run.id,
                name=run.name,
                label=f"#{run.id} {run.name} ({trick_summary(config)}{accuracy})",
                label_smoothing=config.tricks.label_smoothing,
            )
        )
    wanted = "T-LS, trained with label smoothing" if smoothed else "T, trained without label smoothing"
    why = f"the preset names {teacher}" if teacher is not None else "like this student"
    if not choices:
        return [], f"No finished run yet: train a teacher first (preset {wanted})."
    first = choices[0]
    if (first.label_smoothing > 0) == smoothed:
        return choices, f"Suggested: #{first.id}, a teacher {wanted.partition(', ')[2]} ({why})."
    return choices, f"No finished run fits: {why}, the report's teacher is {wanted}; train it first."
