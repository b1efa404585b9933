"""The report's names for tricks, one place for the compare table, the study groups and the grid cells.

``trick_summary`` names a run by what it adds to the report's base run, "+Cosine +LS +KD from #7".
The label of each trick says it is on ("+LS") or, in a grid cell that lacks a trick the baseline
has, off ("-LS"). Labels hold no parentheses, so that a spreadsheet reading one as a formula finds
no function call in it (``spreadsheet.as_text``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

from trainer.config import RunConfig
from trainer.presets import arch_title


def cosine_label(on: bool) -> str:
    return "+Cosine" if on else "-Cosine"


def label_smoothing_label(epsilon: float) -> str:
    if not epsilon:
        return "-LS"
    # The report's epsilon is 0.1; only other values need spelling out.
    return "+LS" if epsilon == 0.1 else f"+LS {epsilon:g}"


def kd_label(on: bool, teacher: str | int | None = None) -> str:
    if not on:
        return "-KD"
    return "+KD" if teacher is None else f"+KD from {_teacher_label(teacher)}"


def mixup_label(alpha: float) -> str:
    return f"+Mixup α={alpha:g}" if alpha else "-Mixup"


def warmup_label(epochs: float) -> str:
    return f"+Warmup {epochs:g}ep" if epochs else "-Warmup"


def no_bias_decay_label(on: bool) -> str:
    return "+No bias decay" if on else "-No bias decay"


# A grid cell's label of each switch's value, by the switch's name (``study_spec.SWITCHES``).
SWITCH_LABELS: Mapping[str, Callable[[Any], str]] = {
    "cosine": cosine_label,
    "label_smoothing": label_smoothing_label,
    "kd": kd_label,
    "mixup_alpha": mixup_label,
    "warmup_epochs": warmup_label,
    "no_bias_decay": no_bias_decay_label,
}


def switch_label(name: str, value: Any) -> str:
    """A grid switch's value as its cells' names show it: the trick's label ("+LS"), or for a plain
    dotted RunConfig key, ``key=value``."""
    label = SWITCH_LABELS.get(name)
    return label(value) if label else f"{name}={json.dumps(value)}"


def _teacher_label(teacher: str | int) -> str:
    # Through the API a teacher is a run id; from the CLI it is a run folder.
    return f"#{teacher}" if isinstance(teacher, int) else PurePath(teacher).name


def tricks_on(config: RunConfig) -> list[str]:
    """The labels of the tricks a run turns on, in the report's order: ["+Cosine", "+LS"]."""
    parts: list[str] = []
    if config.schedule.name == "cosine":
        parts.append(cosine_label(True))
    elif config.schedule.name != "onecycle":
        parts.append("+Constant LR")
    if config.schedule.warmup_epochs:
        parts.append(warmup_label(config.schedule.warmup_epochs))
    tricks = config.tricks
    if tricks.label_smoothing:
        parts.append(label_smoothing_label(tricks.label_smoothing))
    if tricks.kd.teacher is not None:
        parts.append(kd_label(True, tricks.kd.teacher))
    if tricks.mixup_alpha:
        parts.append(mixup_label(tricks.mixup_alpha))
    if config.model.zero_init_residual:
        parts.append("+Zero-γ")
    if config.optim.no_bias_decay:
        parts.append(no_bias_decay_label(True))
    if config.optim.linear_scaling:
        parts.append("+Linear LR scaling")
    return parts


def trick_summary(config: RunConfig) -> str:
    """What a run changes from the report's base run, e.g. "ResNet152 +Cosine +LS"; "base" if nothing."""
    model = [arch_title(config.model.arch)] if config.model.arch != "resnet50" else []
    if not config.model.pretrained:
        model.append("from scratch")
    return " ".join([*model, *tricks_on(config)]) or "base"


def logged_lr_groups(config: RunConfig) -> str:
    """The layer groups whose rate a run logs per epoch: the fastest ones (the trainer logs the
    largest rate), e.g. "layer4 and fc (lr/2)"."""
    divisors = config.optim.layer_lr_divisors.model_dump()
    fastest = min(divisors.values())
    names = [name for name, divisor in divisors.items() if divisor == fastest]
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{joined} (lr/{fastest:g})"
