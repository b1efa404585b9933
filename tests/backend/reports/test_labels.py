"""The report's names for runs and grid cells."""

from __future__ import annotations

from backend.reports.labels import trick_summary
from trainer.config import RunConfig
from trainer.presets import get_preset


def test_trick_summary_names_tricks_in_the_reports_words():
    assert trick_summary(RunConfig()) == "base"
    assert trick_summary(get_preset("h").config(teacher=7)) == "+Cosine +LS +KD (teacher #7)"
    assert trick_summary(get_preset("T-LS").config()) == "ResNet152 +LS"
    assert trick_summary(get_preset("d2").config()) == "+Mixup α=0.2"
    assert trick_summary(get_preset("c").config(teacher="/runs/12")) == "+KD (teacher 12)"
