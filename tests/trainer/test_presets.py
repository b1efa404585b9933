"""The presets: the report's study (T, T-LS, base, a–i2) with the settings of its results table."""

from __future__ import annotations

import pytest
from testlib.presets import preset_config

from trainer.presets import PRESETS, get_preset


def test_every_preset_is_a_valid_run_config():
    for preset in PRESETS:
        config = preset_config(preset.key, teacher=7 if preset.teacher else None)
        assert config.name == preset.key


@pytest.mark.parametrize(
    ("key", "arch", "schedule", "smoothing", "mixup", "teacher"),
    [
        ("base", "resnet50", "onecycle", 0.0, 0.0, None),
        ("T-LS", "resnet152", "onecycle", 0.1, 0.0, None),
        ("c", "resnet50", "onecycle", 0.0, 0.0, "T"),
        ("d4", "resnet50", "onecycle", 0.0, 0.01, None),
        ("g", "resnet50", "onecycle", 0.1, 0.0, "T-LS"),
        ("i1", "resnet50", "cosine", 0.1, 0.2, "T-LS"),
    ],
)
def test_presets_carry_the_reports_settings(key, arch, schedule, smoothing, mixup, teacher):
    preset = get_preset(key)
    config = preset_config(key, teacher=3 if teacher else None)
    assert (config.model.arch, config.schedule.name) == (arch, schedule)
    assert (config.tricks.label_smoothing, config.tricks.mixup_alpha) == (smoothing, mixup)
    assert preset.teacher == teacher
    # The report's KD settings and training defaults are RunConfig's own.
    assert (config.tricks.kd.alpha, config.tricks.kd.temperature, config.epochs, config.batch_size) == (
        0.1,
        10.0,
        10,
        64,
    )


def test_kd_preset_needs_a_teacher_and_unknown_keys_are_named():
    with pytest.raises(ValueError, match="T-LS"):
        preset_config("h")
    with pytest.raises(KeyError, match="choose one of demo, base, T"):
        get_preset("z")
