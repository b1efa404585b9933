"""GET /api/v1/presets: the seed study's experiments, as the launch form applies them."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter

from trainer.config import RunConfig
from trainer.presets import PRESETS, Preset

router = APIRouter(prefix="/api/v1/presets", tags=["presets"])

TEACHER_KEY = "tricks.kd.teacher"


def _default(dotted: str) -> Any:
    value: Any = RunConfig().model_dump(mode="json")
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
