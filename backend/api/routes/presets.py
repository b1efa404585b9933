"""GET /api/v1/presets: the seed study's experiments, as the launch form applies them; and
GET /api/v1/presets/teachers: the finished runs a distillation preset can learn from."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Query

from backend.api.deps import SessionDep
from backend.models import RunStatus
from backend.services import runs as run_service
from backend.summary import teacher_choices
from trainer.config import RunConfig
from trainer.presets import PRESETS, Preset

router = APIRouter(prefix="/presets", tags=["presets"])

TEACHER_KEY = "tricks.kd.teacher"


@cache
def _defaults() -> dict[str, Any]:
    return RunConfig().model_dump(mode="json")


def _default(dotted: str) -> Any:
    value: Any = _defaults()
    for part in dotted.split("."):
        value = value[part]
    return value


@cache
def _preset_keys() -> tuple[str, ...]:
    """Every key some preset sets: choosing a preset resets these and leaves the rest of the form alone,
    so switching from "h" to "a" drops LS and KD but keeps the user's epochs, data folder and device."""
    keys = {TEACHER_KEY}
    for preset in PRESETS:
        keys.update(preset.values())
    return tuple(sorted(keys))


def preset_public(preset: Preset) -> dict[str, Any]:
    own = preset.values()
    return {
        "key": preset.key,
        "title": preset.title,
        "teacher": preset.teacher,
        "reported_top1": preset.reported_top1,
        "reported_top5": preset.reported_top5,
        "overrides": dict(preset.overrides),
        # The teacher run is picked on the form (GET /api/v1/presets/teachers); here it is cleared.
        "values": {key: own[key] if key in own else _default(key) for key in _preset_keys()},
    }


@router.get("")
def list_presets() -> dict[str, Any]:
    data = [preset_public(preset) for preset in PRESETS]
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
