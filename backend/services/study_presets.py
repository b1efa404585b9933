"""The preset studies' plans: ``seed``, the report's runs, and ``paper``, the paper's refinements
stacked one by one (``trainer.presets.PAPER_STEPS``), each after its teachers."""

from __future__ import annotations

from typing import Any

from backend.schemas.study_spec import BASELINE_GROUP, TEACHER_PREFIX
from backend.services.errors import InvalidStudy
from backend.services.study_groups import GroupPlan, Plan, check_group, config_of
from trainer.config import ARCHS, ConfigError
from trainer.presets import PAPER, PAPER_BASELINE, PAPER_TEACHER_ARCH, PAPER_WARMUP_EPOCHS, RESNET_D, STUDY, Preset

# Keys the paper study's rows set themselves: an override would undo a row's one refinement, or
# (pretrained weights) make zero-init invalid.
PAPER_FIXED = {
    "model.pretrained": "every row trains from scratch (zero-init of the last BN gamma needs it)",
    "model.zero_init_residual": "its zero-init row turns it on",
    "optim.no_bias_decay": "its no-bias-decay row turns it on",
    "optim.linear_scaling": "its linear-scaling row turns it on",
    "schedule.name": "its baseline keeps a constant rate and its cosine row turns cosine on",
}
# A refinement's own setting: an override changes the refinement, from its row on; earlier rows keep it off.
PAPER_PER_ROW = (
    "schedule.warmup_epochs",
    "tricks.label_smoothing",
    "tricks.mixup_alpha",
    "tricks.kd.temperature",
    "tricks.kd.alpha",
)


def seed_plan(every: dict[str, Any], teacher: dict[str, Any]) -> Plan:
    """The report's runs in its table's order: the teachers, the base, then a to i2."""
    teacher_keys = {preset.teacher for preset in STUDY if preset.teacher}
    ordered = sorted(STUDY, key=lambda preset: preset.key not in teacher_keys)  # stable: report order otherwise

    def plan(preset: Preset) -> GroupPlan:
        is_teacher = preset.key in teacher_keys
        values = {**preset.overrides, **every, **(teacher if is_teacher else {})}
        check_group(values, every=every, teacher=teacher, is_teacher=is_teacher)
        return GroupPlan(
            preset.key,
            # The report's names, with the model the overrides give ("Teacher: ResNet34").
            preset.title_for(config_of(values).model.arch),
            "teacher" if is_teacher else "experiment",
            values,
            preset.teacher,
            (preset.reported_top1, preset.reported_top5),
        )

    return Plan([plan(preset) for preset in ordered], BASELINE_GROUP)


def _resnet_d(arch: str, loc: tuple[str, ...]) -> str:
    """The -D variant (timm) of a plain ResNet, which the paper study's ResNet-D row trains."""
    tweaked = f"{arch}d"
    if tweaked in ARCHS:
        return tweaked
    try:
        config_of({**PAPER_BASELINE, "model.arch": tweaked})
    except ConfigError:
        raise InvalidStudy(
            {
                loc: f"the paper study's ResNet-D row trains the -D variant of {arch!r}, and {tweaked!r} is none: "
                "give a plain ResNet (resnet18, resnet34, resnet50, resnet101 or resnet152)"
            }
        ) from None
    return tweaked


def paper_plan(every: dict[str, Any], teacher: dict[str, Any]) -> Plan:
    """The paper's refinements one row at a time, after its teacher (the -D variant of the teacher's
    ResNet, resnet152d unless ``teacher.model.arch`` names another, trained with all but KD)."""
    fixed: dict[tuple[str, ...], str] = {
        ("overrides", prefix + key): f"set by the paper study: {reason}"
        for prefix, given in (("", every), (TEACHER_PREFIX, teacher))
        for key, value in given.items()
        if (reason := PAPER_FIXED.get(key)) and value != PAPER_BASELINE.get(key)
    }
    if fixed:
        raise InvalidStudy(fixed)
    # What the baseline sets anyway (model.pretrained false in a CPU try-out) must not undo a later row.
    every = {key: value for key, value in every.items() if key not in PAPER_FIXED}
    teacher = {key: value for key, value in teacher.items() if key not in PAPER_FIXED}
    arch = every.get("model.arch", "resnet50")
    tweaked = _resnet_d(arch, ("overrides", "model.arch"))
    teacher_arch = teacher.get("model.arch")
    teacher_tweaked = (
        _resnet_d(teacher_arch, ("overrides", TEACHER_PREFIX + "model.arch")) if teacher_arch else PAPER_TEACHER_ARCH
    )
    warmup = every.get("schedule.warmup_epochs", PAPER_WARMUP_EPOCHS)
    epochs = config_of({**PAPER_BASELINE, **every}).epochs
    if "schedule.warmup_epochs" not in every and warmup >= epochs:
        loc = ("overrides", "epochs") if "epochs" in every else ("overrides",)
        raise InvalidStudy(
            {
                loc: f"the paper study warms up for {warmup:g} epochs from its second row, so its runs need more "
                f"than {warmup:g} epochs (they have {epochs}); or set a shorter schedule.warmup_epochs, which applies "
                "from that row on"
            }
        )
    shared = {key: value for key, value in every.items() if key not in PAPER_PER_ROW and key != RESNET_D}

    def plan(preset: Preset) -> GroupPlan:
        is_teacher = preset.key == PAPER[0].key
        values = {**preset.overrides, **shared}
        values.update({key: every[key] for key in PAPER_PER_ROW if key in every and key in preset.overrides})
        on_d = RESNET_D in preset.overrides
        values[RESNET_D] = teacher_tweaked if is_teacher else tweaked if on_d else arch
        if is_teacher:
            values.update({key: value for key, value in teacher.items() if key != RESNET_D})
        check_group(values, every=every, teacher=teacher, is_teacher=is_teacher)
        return GroupPlan(
            preset.key,
            preset.title_for(str(values[RESNET_D])),
            "teacher" if is_teacher else "experiment",
            values,
            preset.teacher,
            (preset.reported_top1, preset.reported_top5),
        )

    return Plan([plan(preset) for preset in PAPER], BASELINE_GROUP)
