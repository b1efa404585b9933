"""The presets: the report's study (T, T-LS, base, a–i2) with the settings of its results table, run for
run; the paper's recipe, one refinement per row; and the CPU demo, which is configs/demo.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from testlib.presets import preset_config
from torch import nn

from trainer.config import RunConfig, apply_overrides
from trainer.presets import PAPER, PRESETS, STUDY, arch_title, get_preset
from trainer.tricks.mixup import MixedBatch
from trainer.tricks.recipe import Tricks

ROOT = Path(__file__).resolve().parents[2]

# SEED_STUDY.md's table of experiments: arch, schedule, student label smoothing, mixup alpha, teacher,
# the report's peak valid top-1 and top-5. g, h, i1 and i2 ("+ LS + KD") learn from T-LS with an
# unsmoothed student: the report says label smoothing "cannot simply be applied to the student".
REPORT = {
    "T": ("resnet152", "onecycle", 0.0, 0.0, None, 80.49, 96.61),
    "T-LS": ("resnet152", "onecycle", 0.1, 0.0, None, 82.78, 96.34),
    "base": ("resnet50", "onecycle", 0.0, 0.0, None, 78.53, 93.82),
    "a": ("resnet50", "cosine", 0.0, 0.0, None, 79.13, 95.77),
    "b": ("resnet50", "onecycle", 0.1, 0.0, None, 81.55, 96.17),
    "c": ("resnet50", "onecycle", 0.0, 0.0, "T", 81.36, 96.90),
    "d1": ("resnet50", "onecycle", 0.0, 1.0, None, 5.27, 24.24),
    "d2": ("resnet50", "onecycle", 0.0, 0.2, None, 35.53, 78.05),
    "d3": ("resnet50", "onecycle", 0.0, 0.1, None, 51.92, 91.21),
    "d4": ("resnet50", "onecycle", 0.0, 0.01, None, 80.13, 96.38),
    "e": ("resnet50", "cosine", 0.1, 0.0, None, 81.20, 96.44),
    "f": ("resnet50", "cosine", 0.0, 0.0, "T", 81.44, 96.79),
    "g": ("resnet50", "onecycle", 0.0, 0.0, "T-LS", 81.84, 96.09),
    "h": ("resnet50", "cosine", 0.0, 0.0, "T-LS", 82.09, 95.77),
    "i1": ("resnet50", "cosine", 0.0, 0.2, "T-LS", 79.49, 95.98),
    "i2": ("resnet50", "cosine", 0.0, 0.01, "T-LS", 81.43, 96.30),
}


def test_every_preset_is_a_valid_run_config():
    for preset in PRESETS:
        config = preset_config(preset.key, teacher=7 if preset.teacher else None)
        assert config.name == preset.key


@pytest.mark.parametrize("key", list(REPORT))
def test_each_preset_is_the_reports_run(key):
    arch, schedule, smoothing, mixup, teacher, top1, top5 = REPORT[key]
    preset = get_preset(key)
    config = preset_config(key, teacher=3 if teacher else None)
    assert (config.model.arch, config.schedule.name) == (arch, schedule)
    assert (config.tricks.label_smoothing, config.tricks.mixup_alpha) == (smoothing, mixup)
    assert preset.teacher == teacher and (preset.reported_top1, preset.reported_top5) == (top1, top5)
    # The report's KD settings and training defaults are RunConfig's own.
    assert (config.tricks.kd.alpha, config.tricks.kd.temperature, config.epochs, config.batch_size) == (
        0.1,
        10.0,
        10,
        64,
    )
    assert config.model.pretrained and config.schedule.warmup_epochs == 0


def test_the_study_is_the_reports_sixteen_runs_in_its_order():
    assert [preset.key for preset in STUDY] == ["base", "T", "T-LS", *list(REPORT)[3:]]
    assert len(STUDY) == len(REPORT) == 16
    # Titles keep the report's words; a run's own model replaces the report's in them.
    assert get_preset("g").title == "g: + LS + KD"
    assert (
        get_preset("T").title == "Teacher: ResNet152" and get_preset("T").title_for("resnet34") == "Teacher: ResNet34"
    )
    assert get_preset("base").title_for("resnet18") == "ResNet18 base (OneCycle)"


def test_a_kd_run_without_label_smoothing_computes_the_reports_loss():
    """The report's knowledge_distillation_loss, on fixed logits, is what preset g trains with."""
    torch.manual_seed(0)
    pred, teacher_pred = torch.randn(8, 200), torch.randn(8, 200)
    labels = torch.randint(0, 200, (8,))
    config = preset_config("g", teacher=3)
    teacher = nn.Module()
    teacher.forward = lambda images: teacher_pred  # the teacher's fixed logits
    tricks = Tricks(config.tricks, seed=config.seed, teacher=teacher)
    parts = tricks.loss(pred, MixedBatch(images=torch.zeros(8, 3, 4, 4), target_a=labels, target_b=labels, lam=1.0))

    alpha, temperature = 0.1, 10.0
    student_loss = F.cross_entropy(pred, labels)
    distillation_loss = nn.KLDivLoss(reduction="batchmean")(
        F.log_softmax(pred / temperature, dim=1), F.softmax(teacher_pred / temperature, dim=1)
    ) * (temperature * temperature)
    report = alpha * student_loss + (1 - alpha) * distillation_loss
    torch.testing.assert_close(parts.task_loss, student_loss)
    torch.testing.assert_close(parts.loss, report)


def test_configs_demo_yaml_is_the_demo_preset():
    assert RunConfig.load(ROOT / "configs" / "demo.yaml") == preset_config("demo")
    # The README's `--set tricks.label_smoothing=0.1` changes something.
    assert preset_config("demo").tricks.label_smoothing == 0.0


def test_kd_preset_needs_a_teacher_and_unknown_keys_are_named():
    with pytest.raises(ValueError, match="T-LS"):
        preset_config("h")
    with pytest.raises(KeyError, match="choose one of demo, base, T"):
        get_preset("z")


def _flat(config: RunConfig) -> dict[str, object]:
    """A RunConfig as dotted keys and values."""

    def walk(value: object, prefix: str) -> dict[str, object]:
        if isinstance(value, dict):
            return {key: leaf for name, inner in value.items() for key, leaf in walk(inner, f"{prefix}{name}.").items()}
        return {prefix.removesuffix("."): value}

    return walk(config.model_dump(mode="json"), "")


# The paper's recipe (He et al., Table 6's order): each row's changes against the row before, with the
# paper's settings (5 warmup epochs, mixup 0.2, KD T = 20 with equal weights on its two terms).
PAPER_RECIPE = {
    "base": {},
    "scaling-warmup": {"optim.linear_scaling": True, "schedule.warmup_epochs": 5.0},
    "zero-init": {"model.zero_init_residual": True},
    "no-bias-decay": {"optim.no_bias_decay": True},
    "resnet-d": {"model.arch": "resnet50d"},
    "cosine": {"schedule.name": "cosine"},
    "label-smoothing": {"tricks.label_smoothing": 0.1},
    "mixup": {"tricks.mixup_alpha": 0.2},
    "kd": {"tricks.kd.temperature": 20.0, "tricks.kd.alpha": 0.5, "tricks.kd.teacher": 3},
}


def _paper_config(preset, teacher=None):
    values = {**preset.overrides, "tricks.kd.teacher": teacher}
    return RunConfig.from_dict(apply_overrides({}, values))


def test_each_paper_row_is_the_row_before_plus_one_refinement():
    teacher, *rows = PAPER
    assert [row.key for row in rows] == list(PAPER_RECIPE)
    configs = [_paper_config(row, 3 if row.teacher else None) for row in rows]
    base = configs[0]
    # The paper's baseline: ResNet-50 from scratch, SGD at 0.1 with momentum 0.9 and weight decay 1e-4,
    # one rate for every layer; a constant rate so that warmup can be added (OneCycle has its own).
    assert (base.model.arch, base.model.pretrained, base.schedule.name, base.schedule.warmup_epochs) == (
        "resnet50",
        False,
        "constant",
        0.0,
    )
    assert (base.optim.name, base.optim.lr, base.optim.momentum, base.optim.weight_decay) == ("sgd", 0.1, 0.9, 1e-4)
    assert set(base.optim.layer_lr_divisors.model_dump().values()) == {1.0} and base.lr_scale == 1.0
    for key, before, after in zip(list(PAPER_RECIPE)[1:], configs[:-1], configs[1:], strict=True):
        old, new = _flat(before), _flat(after)
        assert {name: new[name] for name in new if new[name] != old[name]} == PAPER_RECIPE[key], key
    # Linear scaling at the report's batch 64: 0.1 x 64 / 256.
    assert configs[1].lr_scale * configs[1].optim.lr == pytest.approx(0.025)
    assert [row.reported_top1 for row in rows] == [75.3, *[None] * 7, 79.29]
    assert all(row.reported_top5 is None for row in PAPER)
    assert rows[-1].teacher == teacher.key == "T"
    assert rows[0].title_for("resnet18") == "ResNet18 baseline (SGD from scratch, constant rate)"


def test_the_paper_teacher_is_a_resnet152d_with_every_refinement_but_kd():
    teacher, *rows = PAPER
    config, mixup = _flat(_paper_config(teacher)), _flat(_paper_config(rows[-2]))
    assert {name: config[name] for name in config if config[name] != mixup[name]} == {"model.arch": "resnet152d"}
    assert config["tricks.kd.teacher"] is None and teacher.title == "Teacher: ResNet152d with every refinement but KD"


@pytest.mark.parametrize(
    ("arch", "title"),
    [
        ("resnet50", "ResNet50"),
        ("resnet50d", "ResNet50d"),
        ("resnet50d.a1_in1k", "ResNet50d.a1_in1k"),
        ("resnext50_32x4d", "resnext50_32x4d"),
        ("efficientnet_b0", "efficientnet_b0"),
    ],
)
def test_a_resnet_is_titled_as_the_report_writes_it_and_any_other_model_by_its_name(arch, title):
    assert arch_title(arch) == title
