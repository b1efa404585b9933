"""GET /api/v1/presets: the seed study's experiments, as the launch form applies them; and
GET /api/v1/presets/teachers: the finished runs a distillation preset can learn from."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from backend.api.deps import SessionDep
from backend.config_form import presets_public
from backend.models import RunStatus
from backend.services import runs as run_service
from backend.summary import teacher_choices

router = APIRouter(prefix="/presets", tags=["presets"])


@router.get("")
def list_presets() -> dict[str, Any]:
    data = presets_public()
    return {"data": data, "count": len(data)}


# More finished runs than anyone picks a teacher from in a list; the best matches come first anyway.
TEACHER_LIMIT = 500


@router.get("/teachers")
def list_teachers(
    session: SessionDep,
    label_smoothing: Annotated[float, Query(ge=0, lt=1, description="the student's tricks.label_smoothing")] = 0.0,
) -> dict[str, Any]:
    """Succeeded runs, the suggested teacher first: LS-trained for an LS student, as in the report."""
    finished, _ = run_service.list_runs(session=session, statuses=[RunStatus.succeeded], limit=TEACHER_LIMIT)
    choices, hint = teacher_choices(finished, label_smoothing=label_smoothing)
    return {
        "data": choices,
        "count": len(choices),
        "suggested_id": choices[0].id if choices else None,
        "hint": hint,
    }
