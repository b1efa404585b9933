"""GET /api/v1/presets: the seed study's experiments, as the launch form applies them; and
GET /api/v1/presets/teachers: the finished runs a distillation preset can learn from."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from backend.api.deps import SessionDep
from backend.api.responses import READ
from backend.schemas.presets import TeachersPublic
from backend.services import teachers
from backend.services.presets import presets_public
from trainer.presets import TeacherKey

router = APIRouter(prefix="/presets", tags=["presets"])


@router.get("")
def list_presets() -> dict[str, Any]:
    data = presets_public()
    return {"data": data, "count": len(data)}


@router.get("/teachers", responses=READ)
def list_teachers(
    session: SessionDep,
    label_smoothing: Annotated[
        float, Query(ge=0, lt=1, allow_inf_nan=False, description="the student's tricks.label_smoothing")
    ] = 0.0,
    teacher: Annotated[
        TeacherKey | None, Query(description="the teacher the student's preset names; it decides the suggestion")
    ] = None,
) -> TeachersPublic:
    """Succeeded runs, the suggested teacher first: the preset's T or T-LS, else one trained like the student."""
    return teachers.list_teachers(session=session, label_smoothing=label_smoothing, teacher=teacher)
