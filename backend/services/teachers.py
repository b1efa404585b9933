"""The finished runs a distillation student can learn from, the one the report would have picked first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy.orm import Session

from backend.models import RunStatus
from backend.reports.labels import trick_summary
from backend.schemas.presets import TeacherChoice, TeachersPublic
from backend.services import runs as run_service
from trainer.config import ARCHS, RunConfig

# More finished runs than anyone picks a teacher from in a list; the best matches come first anyway.
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
    def max_valid_top1(self) -> float | None: ...


def list_teachers(*, session: Session, label_smoothing: float) -> TeachersPublic:
    """Succeeded runs, the suggested teacher first: LS-trained for an LS student, as in the report."""
    finished, _ = run_service.list_runs(session=session, statuses=[RunStatus.succeeded], limit=TEACHER_LIMIT)
    choices, hint = teacher_choices(finished, label_smoothing=label_smoothing)
    return TeachersPublic(data=choices, count=len(choices), suggested_id=choices[0].id if choices else None, hint=hint)


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
        depth = ARCHS.index(config.model.arch) if config.model.arch in ARCHS else -1  # short list: shallow to deep
        return (same_ls, depth, run.max_valid_top1 or 0.0, run.id)

    choices = []
    for run in sorted(runs, key=rank, reverse=True):
        config = configs[run.id]
        accuracy = f", valid top-1 {run.max_valid_top1:.2f}" if run.max_valid_top1 is not None else ""
        choices.append(
            TeacherChoice(
                id=run.id,
                name=run.name,
                label=f"#{run.id} {run.name} ({trick_summary(config)}{accuracy})",
                label_smoothing=config.tricks.label_smoothing,
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
