"""The report's runs as validated configs, for tests that need one without a study around it."""

from __future__ import annotations

from trainer.config import RunConfig, apply_overrides
from trainer.presets import get_preset


def preset_config(key: str, *, teacher: str | int | None = None) -> RunConfig:
    """Preset ``key``'s RunConfig; ``teacher`` (a run folder or id) stands in for the run a KD preset learns from."""
    preset = get_preset(key)
    if preset.teacher and teacher is None:
        raise ValueError(f"preset {key} distils from a {preset.teacher} run: pass its folder or id as teacher")
    values = preset.values()
    if teacher is not None:
        values["tricks.kd.teacher"] = teacher
    return RunConfig.from_dict(apply_overrides({}, values))
