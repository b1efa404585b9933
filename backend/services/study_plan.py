"""A study's plan: its groups of runs, worked out and validated before anything is written.

A study is a preset (``seed`` or ``paper``, ``study_presets``) or a grid of trick switches
(``study_grid``); the groups and their shared checks are in ``study_groups``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from backend.schemas.study_spec import PAPER_PRESET, SEED_PRESET, TEACHER_PREFIX
from backend.services.errors import InvalidStudy
from backend.services.study_grid import grid_plan
from backend.services.study_groups import Plan, split_overrides
from backend.services.study_presets import paper_plan, seed_plan
from trainer.presets import PAPER_BASELINE

PRESET_PLANS: Mapping[str, Callable[[dict[str, Any], dict[str, Any]], Plan]] = {
    SEED_PRESET: seed_plan,
    PAPER_PRESET: paper_plan,
}


def plan_study(*, preset: str | None, switches: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> Plan:
    """The groups a request makes, validated; raises InvalidStudy naming the request field at fault."""
    every, teacher = split_overrides(overrides, base=PAPER_BASELINE if preset == PAPER_PRESET else {})
    if preset is not None and preset not in PRESET_PLANS:
        raise InvalidStudy({("preset",): f"unknown preset {preset!r}; choose {' or '.join(map(repr, PRESET_PLANS))}"})
    plan = PRESET_PLANS[preset](every, teacher) if preset is not None else grid_plan(switches or {}, every, teacher)
    if teacher and not any(group.role == "teacher" for group in plan.groups):
        key = next(key for key in overrides if key.startswith(TEACHER_PREFIX))
        raise InvalidStudy({("overrides", key): "no run of this study is a teacher (add the kd switch)"})
    return plan
