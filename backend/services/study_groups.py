"""A study's groups of runs and the checks they share: what the preset and grid plans build on.

Each group is a set of dotted overrides on RunConfig's defaults; the study service replicates every
group over seeds and gives the students their teacher runs. Every invalid request raises
InvalidStudy located at the request field at fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.reports.labels import trick_summary
from backend.schemas.study_spec import STUDY_KEYS, TEACHER_ONLY_FORBIDDEN, TEACHER_PREFIX, Role, SkippedCell
from backend.services.errors import InvalidStudy
from trainer.config import ConfigError, RunConfig, apply_overrides


@dataclass(frozen=True)
class GroupPlan:
    key: str
    title: str
    role: Role
    values: dict[str, Any]  # dotted overrides on RunConfig's defaults, without name, seed and teacher
    teacher: str | None = None  # key of the teacher group
    reported: tuple[float | None, float | None] = (None, None)
    cell: dict[str, Any] | None = None  # a grid cell's value of each switch

    @property
    def tricks(self) -> str:
        # The teacher group's key stands in for its run ids, which differ by seed.
        return trick_summary(config_of({**self.values, "tricks.kd.teacher": self.teacher}))


@dataclass
class Plan:
    groups: list[GroupPlan]
    baseline: str
    skipped: list[SkippedCell] = field(default_factory=list)


def _owning_key(field_name: str, keys: Iterable[str]) -> str | None:
    """The override that set ``field_name`` (itself or a parent mapping such as "data")."""
    owners = [key for key in keys if field_name == key or field_name.startswith(key + ".")]
    return max(owners, key=len, default=None)


def locate_errors(errors: Mapping[str, str], keys: Iterable[str], prefix: str = "") -> dict[tuple[str, ...], str]:
    """Config errors as request locations: each under the override (``prefix`` + key) that caused it."""
    located: dict[tuple[str, ...], str] = {}
    for field_name, message in errors.items():
        key = _owning_key(field_name, keys)
        loc = ("overrides", prefix + key) if key else ("overrides",)
        text = message if key == field_name else f"{field_name}: {message}"
        located[loc] = f"{located[loc]}; {text}" if loc in located else text
    return located


def config_of(values: Mapping[str, Any]) -> RunConfig:
    """The RunConfig of dotted overrides on the defaults; ConfigError names the failing fields."""
    return RunConfig.from_dict(apply_overrides({}, values))


def split_overrides(overrides: Mapping[str, Any], *, base: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every-run overrides and teacher-only ones (``teacher.`` stripped), checked key by key and
    together on top of ``base``, the design's baseline."""
    every: dict[str, Any] = {}
    teacher: dict[str, Any] = {}
    errors: dict[tuple[str, ...], str] = {}
    for key, value in overrides.items():
        own = key.removeprefix(TEACHER_PREFIX)
        is_teacher = key.startswith(TEACHER_PREFIX)
        reason = STUDY_KEYS.get(own) or (TEACHER_ONLY_FORBIDDEN.get(own.partition(".")[0]) if is_teacher else None)
        if reason:
            errors[("overrides", key)] = f"set by the study: {reason}"
            continue
        try:
            apply_overrides({}, {own: value})
        except ConfigError as exc:
            message = next(iter(exc.errors.values()))
            if "teacher" in own and not is_teacher:
                message += f"; teacher runs take `{TEACHER_PREFIX}`-prefixed keys, e.g. teacher.model.arch"
            errors[("overrides", key)] = message
            continue
        (teacher if is_teacher else every)[own] = value
    if errors:
        raise InvalidStudy(errors)
    try:
        config_of({**base, **every})
    except ConfigError as exc:
        raise InvalidStudy(locate_errors(exc.errors, every)) from None
    return every, teacher


def check_group(
    values: dict[str, Any], *, every: Mapping[str, Any], teacher: Mapping[str, Any], is_teacher: bool
) -> None:
    """A group whose config fails names the override that made it fail."""
    try:
        config_of({**values, "tricks.kd.teacher": None})
    except ConfigError as exc:
        keys = list(teacher) if is_teacher else []
        located = locate_errors({f: m for f, m in exc.errors.items() if _owning_key(f, keys)}, keys, TEACHER_PREFIX)
        rest = {f: m for f, m in exc.errors.items() if not _owning_key(f, keys)}
        located.update(locate_errors(rest, every))
        raise InvalidStudy(located) from None
