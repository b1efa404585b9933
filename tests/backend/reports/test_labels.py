"""The report's names for runs and grid cells, and the layer group a run logs its rate for."""

from __future__ import annotations

from testlib.presets import preset_config

from backend.reports.labels import SWITCH_LABELS, logged_lr_groups, switch_label, trick_summary
from backend.schemas.study_spec import SWITCHES
from trainer.config import RunConfig


def test_trick_summary_names_tricks_in_the_reports_words():
    assert trick_summary(RunConfig()) == "base"
    assert trick_summary(preset_config("h", teacher=7)) == "+Cosine +KD from #7"
    assert trick_summary(preset_config("T-LS")) == "ResNet152 +LS"
    assert trick_summary(preset_config("d2")) == "+Mixup α=0.2"
    assert trick_summary(preset_config("c", teacher="/runs/12")) == "+KD from 12"
    # g is "+ LS + KD" in the report's words: what is on is distillation from the smoothed teacher.
    assert trick_summary(preset_config("g", teacher="T-LS")) == "+KD from T-LS"


def test_the_logged_rate_is_named_by_its_fastest_groups():
    assert logged_lr_groups(RunConfig()) == "layer4 and fc (lr/2)"
    config = RunConfig.from_dict({"optim": {"layer_lr_divisors": {"fc": 1}}})
    assert logged_lr_groups(config) == "fc (lr/1)"
    same = RunConfig.from_dict(
        {"optim": {"layer_lr_divisors": dict.fromkeys(("stem", "layer1", "layer2", "layer3", "layer4", "fc"), 1)}}
    )
    assert logged_lr_groups(same) == "stem, layer1, layer2, layer3, layer4 and fc (lr/1)"


def test_every_grid_switch_has_the_reports_label_and_a_plain_key_its_value():
    assert set(SWITCH_LABELS) == {switch.name for switch in SWITCHES}
    assert (switch_label("label_smoothing", 0.1), switch_label("kd", False)) == ("+LS", "-KD")
    assert switch_label("batch_size", 32) == "batch_size=32"
