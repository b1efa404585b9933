"""A grid study's plan: the cartesian product of trick switches (``study_spec.SWITCHES``) or of
plain dotted RunConfig keys swept over lists of values; distillation brings its teachers."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from typing import Any

from backend.reports.labels import switch_label
from backend.schemas.study_spec import BASELINE_GROUP, MAX_RUNS, STUDY_KEYS, SWITCHES_BY_NAME, SkippedCell, Switch
from backend.services.errors import InvalidStudy
from backend.services.study_groups import GroupPlan, Plan, check_group, config_of
from trainer.config import ConfigError, apply_overrides
from trainer.presets import PRESETS_BY_KEY


def _switch(name: str) -> Switch | None:
    """A named trick, or a plain dotted RunConfig key swept over a list of values."""
    if name in SWITCHES_BY_NAME:
        return SWITCHES_BY_NAME[name]
    try:
        apply_overrides({}, {name: None})
    except ConfigError:
        return None
    return Switch(name, name, None, key=name)


def _switch_values(name: str, raw: Any) -> tuple[Switch, list[Any]]:
    loc = ("grid", "switches", name)
    switch = _switch(name)
    if switch is None:
        known = ", ".join(SWITCHES_BY_NAME)
        raise InvalidStudy(
            {loc: f"unknown switch: use one of {known}, or a dotted RunConfig key with a list of values"}
        )
    if switch.key in STUDY_KEYS:
        raise InvalidStudy({loc: f"set by the study: {STUDY_KEYS[switch.key]}"})
    if raw is True and switch.default is not None:
        values = list(switch.default)
    elif isinstance(raw, list) and raw:
        values = raw
    else:
        expected = "true or a list of values" if switch.default is not None else "a list of values"
        raise InvalidStudy({loc: f"expected {expected} (the first is the baseline's), got {json.dumps(raw)}"})
    if switch.is_flag and not all(isinstance(value, bool) for value in values):
        raise InvalidStudy({loc: "an on/off switch takes true, or a list of true/false"})
    if len({json.dumps(value) for value in values}) != len(values):
        raise InvalidStudy({loc: "a value is listed twice"})
    return switch, values


def _teacher_group(label_smoothing: float, *, every: dict[str, Any], teacher: dict[str, Any]) -> GroupPlan:
    """As in the report: a ResNet152 trained like the base, with the student's label smoothing."""
    key = "T" if not label_smoothing else "T-LS" if label_smoothing == 0.1 else f"T-LS {label_smoothing:g}"
    values = {**PRESETS_BY_KEY["T"].overrides, **every, "tricks.label_smoothing": label_smoothing, **teacher}
    check_group(values, every=every, teacher=teacher, is_teacher=True)
    return GroupPlan(key, f"Teacher {key}", "teacher", values)


def grid_plan(switches: Mapping[str, Any], every: dict[str, Any], teacher: dict[str, Any]) -> Plan:
    """Every combination of the switches' values; the first values make the baseline.

    A combination whose config is invalid (warmup with OneCycle) is skipped and listed, so that
    "cosine x warmup" needs no special case; a value that no valid combination takes is an error.
    """
    chosen = [_switch_values(name, raw) for name, raw in switches.items()]
    size = math.prod(len(values) for _, values in chosen)
    if size > MAX_RUNS:
        raise InvalidStudy({("grid", "switches"): f"{size} combinations; at most {MAX_RUNS} runs in a study"})
    baseline_values = [values[0] for _, values in chosen]
    teachers: dict[float, GroupPlan] = {}
    cells: list[GroupPlan] = []
    skipped: list[SkippedCell] = []
    valid: list[dict[str, Any]] = []
    for combination in itertools.product(*(values for _, values in chosen)):
        cell = {switch.name: value for (switch, _), value in zip(chosen, combination, strict=True)}
        values = dict(every)
        for (switch, _), value in zip(chosen, combination, strict=True):
            values.update(switch.overrides(value))
        try:
            config = config_of(values)
        except ConfigError as exc:
            skipped.append(SkippedCell(cell=cell, reason="; ".join(f"{f}: {m}" for f, m in exc.errors.items())))
            continue
        teacher_key = None
        if cell.get("kd"):
            ls = config.tricks.label_smoothing
            if ls not in teachers:
                teachers[ls] = _teacher_group(ls, every=every, teacher=teacher)
            teacher_key = teachers[ls].key
        changed = [
            switch_label(switch.name, value)
            for (switch, _), value, base in zip(chosen, combination, baseline_values, strict=True)
            if value != base
        ]
        key = " ".join(changed) or BASELINE_GROUP
        if any(group.key == key for group in cells):  # two values with one label ("+Mixup α=0.1")
            key = f"{key} {json.dumps(cell)}"
        cells.append(GroupPlan(key, key, "experiment", values, teacher_key, cell=cell))
        valid.append(cell)
    errors: dict[tuple[str, ...], str] = {}
    for switch, switch_values in chosen:
        for value in switch_values:
            if not any(cell[switch.name] == value for cell in valid):
                reason = next(cell.reason for cell in skipped if cell.cell[switch.name] == value)
                errors.setdefault(("grid", "switches", switch.name), f"{json.dumps(value)}: {reason}")
    if errors:
        raise InvalidStudy(errors)
    if cells[0].key != BASELINE_GROUP:
        raise InvalidStudy({("grid", "switches"): f"the baseline (every first value) is invalid: {skipped[0].reason}"})
    return Plan([*teachers.values(), *cells], BASELINE_GROUP, skipped)
