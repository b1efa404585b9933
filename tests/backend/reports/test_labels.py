"""The report's names for runs and grid cells."""

from __future__ import annotations

from testlib.presets import preset_config

from backend.reports.labels import trick_summary
from trainer.config import RunConfig


def test_trick_summary_names_tricks_in_the_reports_words():
    assert trick_summary(RunConfig()) == "base"
    assert trick_summary(preset_config("h", teacher=7)) == "+Cosine +LS +KD (teacher #7)"
    assert trick_summary(preset_config("T-LS")) == "ResNet152 +LS"
    assert trick_summary(preset_config("d2")) == "+Mixup α=0.2"
    assert trick_summary(preset_config("c", teacher="/runs/12")) == "+KD (teacher 12)"
