"""The launch form's presets, as the launch page and GET /api/v1/presets give them: each preset as
the values it puts into the form's inputs, so that choosing one resets only what presets set."""

from __future__ import annotations

from functools import cache
from typing import Any

from trainer.config import RunConfig
from trainer.presets import PRESETS, Preset

TEACHER_FIELD = "tricks.kd.teacher"


@cache
def _defaults() -> dict[str, Any]:
    return RunConfig().model_dump(mode="json")


def _default(dotted: str) -> Any:
    value: Any = _defaults()
    for part in dotted.split("."):
        value = value[part]
    return value


@cache
def _preset_fields() -> tuple[str, ...]:
    """Every field some preset sets. Choosing a preset resets these and leaves the rest of the form
    alone, so switching from "h" to "a" drops LS and KD but keeps the user's data folder and device."""
    fields = {TEACHER_FIELD}
    for preset in PRESETS:
        fields.update(preset.values())
    return tuple(sorted(fields))


def _preset_public(preset: Preset) -> dict[str, Any]:
    own = preset.values()
    return {
        "key": preset.key,
        "title": preset.title,
        "teacher": preset.teacher,
        "reported_top1": preset.reported_top1,
        "reported_top5": preset.reported_top5,
        "overrides": dict(preset.overrides),
        # The teacher run is picked on the form (GET /api/v1/presets/teachers); here it is cleared.
        "values": {name: own[name] if name in own else _default(name) for name in _preset_fields()},
    }


@cache
def presets_public() -> tuple[dict[str, Any], ...]:
    """The presets as the launch page and GET /api/v1/presets give them."""
    return tuple(_preset_public(preset) for preset in PRESETS)
