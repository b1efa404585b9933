"""A study's plan: its groups of runs, worked out and validated before anything is written.

A study is a preset (``seed``: the report's runs; ``paper``: the paper's refinements stacked one by
one, see ``trainer.presets.PAPER_STEPS``) or a grid, the cartesian product of trick
switches. Each group is a set of dotted overrides on RunConfig's defaults; the study service
replicates every group over seeds and gives the students their teacher runs. Every invalid request
raises InvalidStudy located at the request field at fault.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.reports.labels import (
    cosine_label,
    kd_label,
    label_smoothing_label,
    mixup_label,
    no_bias_decay_label,
    trick_summary,
    warmup_label,
)
from backend.services.errors import InvalidStudy
from trainer.config import ARCHS, ConfigError, RunConfig, apply_overrides
from trainer.presets import (
    PAPER,
    PAPER_BASELINE,
    PAPER_TEACHER_ARCH,
    PAPER_WARMUP_EPOCHS,
    PRESETS_BY_KEY,
    RESNET_D,
    STUDY,
    Preset,
)

SEED_PRESET = "seed"
PAPER_PRESET = "paper"
SEED_RUNS = len(STUDY)  # runs per seed of the seed preset
TEACHER_PREFIX = "teacher."
BASELINE_PRESET = "base"
# A grid grows as a product; past this many runs a typo (a long value list) is likelier than intent.
MAX_RUNS = 600
# Keys the study itself sets on each run.
STUDY_KEYS = {
    "name": "each run is named after the study, its group and its seed",
    "tricks.kd.teacher": "the study picks each student's teacher run (use the kd switch or the preset)",
}
# The study's shape in minutes on a CPU: small models from scratch, small images, two epochs; the
# teachers one size up, so that T stays distinct from the base run.
CPU_TRYOUT = {
    "model.arch": "resnet18",
    "model.pretrained": False,
    "teacher.model.arch": "resnet34",
    "data.image_size": 32,
    "epochs": 2,
    "batch_size": 16,
}
TEACHER_ONLY_FORBIDDEN = {
    "seed": "a teacher takes the seed of the replicate it teaches",
    "data": "a teacher learns the students' dataset and classes",
}


# --- grid switches ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Switch:
    """A trick a grid turns on and off. ``true`` in a request stands for ``default`` (off, then on)."""

    name: str
    title: str
    default: tuple[Any, Any] | None
    label: Callable[[Any], str]
    when_on: Mapping[str, Any] | None = None  # on/off switches: the overrides of "on"
    key: str | None = None  # valued switches: the field the value goes to

    @property
    def is_flag(self) -> bool:
        return self.when_on is not None

    def overrides(self, value: Any) -> dict[str, Any]:
        if self.when_on is not None:
            return dict(self.when_on) if value else {}
        assert self.key is not None, "a switch sets either when_on or key"
        return {self.key: value}


SWITCHES: tuple[Switch, ...] = (
    Switch(
        "cosine",
        "Cosine decay (instead of OneCycle)",
        (False, True),
        cosine_label,
        when_on={"schedule.name": "cosine"},
    ),
    Switch(
        "label_smoothing", "Label smoothing epsilon", (0.0, 0.1), label_smoothing_label, key="tricks.label_smoothing"
    ),
    # The teacher is added by the study (one per label-smoothing value and seed), so "on" sets nothing here.
    Switch("kd", "Knowledge distillation", (False, True), kd_label, when_on={}),
    Switch(
        "mixup_alpha",
        "Mixup alpha",
        (0.0, 0.2),
        mixup_label,
        key="tricks.mixup_alpha",
    ),
    Switch(
        "warmup_epochs",
        "Warmup epochs (cosine or constant only)",
        (0.0, 1.0),
        warmup_label,
        key="schedule.warmup_epochs",
    ),
    Switch(
        "no_bias_decay",
        "No weight decay on biases and norms",
        (False, True),
        no_bias_decay_label,
        when_on={"optim.no_bias_decay": True},
    ),
)
SWITCHES_BY_NAME: Mapping[str, Switch] = {switch.name: switch for switch in SWITCHES}


def _switch(name: str) -> Switch | None:
    """A named trick, or a plain dotted RunConfig key swept over a list of values."""
    if name in SWITCHES_BY_NAME:
        return SWITCHES_BY_NAME[name]
    try:
        apply_overrides({}, {name: None})
    except ConfigError:
        return None
    return Switch(name, name, None, lambda value: f"{name}={json.dumps(value)}", key=name)


# --- groups of runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupPlan:
    key: str
    title: str
    role: str  # "teacher" or "experiment"
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
    skipped: list[dict[str, Any]] = field(default_factory=list)


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


def _split_overrides(overrides: Mapping[str, Any], *, base: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
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


def _check_group(
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


def _preset_plan(every: dict[str, Any], teacher: dict[str, Any]) -> Plan:
    """The report's runs in its table's order: the teachers, the base, then a to i2."""
    teacher_keys = {preset.teacher for preset in STUDY if preset.teacher}
    ordered = sorted(STUDY, key=lambda preset: preset.key not in teacher_keys)  # stable: report order otherwise

    def plan(preset: Preset) -> GroupPlan:
        is_teacher = preset.key in teacher_keys
        values = {**preset.overrides, **every, **(teacher if is_teacher else {})}
        _check_group(values, every=every, teacher=teacher, is_teacher=is_teacher)
        return GroupPlan(
            preset.key,
            # The report's names, with the model the overrides give ("Teacher: ResNet34").
            preset.title_for(config_of(values).model.arch),
            "teacher" if is_teacher else "experiment",
            values,
            preset.teacher,
            (preset.reported_top1, preset.reported_top5),
        )

    return Plan([plan(preset) for preset in ordered], BASELINE_PRESET)


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


def _paper_plan(every: dict[str, Any], teacher: dict[str, Any]) -> Plan:
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
        _check_group(values, every=every, teacher=teacher, is_teacher=is_teacher)
        return GroupPlan(
            preset.key,
            preset.title_for(str(values[RESNET_D])),
            "teacher" if is_teacher else "experiment",
            values,
            preset.teacher,
            (preset.reported_top1, preset.reported_top5),
        )

    return Plan([plan(preset) for preset in PAPER], BASELINE_PRESET)


PRESET_PLANS: Mapping[str, Callable[[dict[str, Any], dict[str, Any]], Plan]] = {
    SEED_PRESET: _preset_plan,
    PAPER_PRESET: _paper_plan,
}


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
    _check_group(values, every=every, teacher=teacher, is_teacher=True)
    return GroupPlan(key, f"Teacher {key}", "teacher", values)


def _grid_plan(switches: Mapping[str, Any], every: dict[str, Any], teacher: dict[str, Any]) -> Plan:
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
    skipped: list[dict[str, Any]] = []
    valid: list[dict[str, Any]] = []
    for combination in itertools.product(*(values for _, values in chosen)):
        cell = {switch.name: value for (switch, _), value in zip(chosen, combination, strict=True)}
        values = dict(every)
        for (switch, _), value in zip(chosen, combination, strict=True):
            values.update(switch.overrides(value))
        try:
            config = config_of(values)
        except ConfigError as exc:
            skipped.append({"cell": cell, "reason": "; ".join(f"{f}: {m}" for f, m in exc.errors.items())})
            continue
        teacher_key = None
        if cell.get("kd"):
            ls = config.tricks.label_smoothing
            if ls not in teachers:
                teachers[ls] = _teacher_group(ls, every=every, teacher=teacher)
            teacher_key = teachers[ls].key
        changed = [
            switch.label(value)
            for (switch, _), value, base in zip(chosen, combination, baseline_values, strict=True)
            if value != base
        ]
        key = " ".join(changed) or "base"
        if any(group.key == key for group in cells):  # two values with one label ("+Mixup α=0.1")
            key = f"{key} {json.dumps(cell)}"
        cells.append(GroupPlan(key, key, "experiment", values, teacher_key, cell=cell))
        valid.append(cell)
    errors: dict[tuple[str, ...], str] = {}
    for switch, switch_values in chosen:
        for value in switch_values:
            if not any(cell[switch.name] == value for cell in valid):
                reason = next(cell["reason"] for cell in skipped if cell["cell"][switch.name] == value)
                errors.setdefault(("grid", "switches", switch.name), f"{json.dumps(value)}: {reason}")
    if errors:
        raise InvalidStudy(errors)
    if cells[0].key != "base":
        raise InvalidStudy(
            {("grid", "switches"): f"the baseline (every first value) is invalid: {skipped[0]['reason']}"}
        )
    return Plan([*teachers.values(), *cells], "base", skipped)


def plan_study(*, preset: str | None, switches: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> Plan:
    """The groups a request makes, validated; raises InvalidStudy naming the request field at fault."""
    every, teacher = _split_overrides(overrides, base=PAPER_BASELINE if preset == PAPER_PRESET else {})
    if preset is not None and preset not in PRESET_PLANS:
        raise InvalidStudy({("preset",): f"unknown preset {preset!r}; choose {' or '.join(map(repr, PRESET_PLANS))}"})
    plan = PRESET_PLANS[preset](every, teacher) if preset is not None else _grid_plan(switches or {}, every, teacher)
    if teacher and not any(group.role == "teacher" for group in plan.groups):
        key = next(key for key in overrides if key.startswith(TEACHER_PREFIX))
        raise InvalidStudy({("overrides", key): "no run of this study is a teacher (add the kd switch)"})
    return plan


PRESET_COMBINATION = (
    "Label smoothing meets distillation as in the report: g, h, i1 and i2 train an unsmoothed student "
    "(a plain cross-entropy task term) from T-LS, the teacher trained with label smoothing."
)
GRID_COMBINATION = (
    "In this grid a group with both label smoothing and KD smooths the student's own task term and learns "
    "from a teacher trained with the same smoothing (the paper's combination). The report's g, h, i1 and i2 "
    "smooth only their teacher: the seed preset has them."
)


PAPER_NOTE = (
    "The paper study trains every row from scratch, since zero-init of the last BN gamma needs it (ImageNet "
    "weights would also make that row change two things), with SGD at 0.1 (momentum 0.9, weight decay 1e-4) "
    "and one rate for every layer. Its baseline keeps a constant rate: the paper steps its rate down, which "
    "has no schedule here, and warmup needs cosine or constant (OneCycle has its own). Each row then adds one "
    "refinement, with the paper's settings: linear scaling and 5 warmup epochs, zero-init, no bias decay, "
    "ResNet-D, cosine, label smoothing 0.1, mixup alpha 0.2, and KD at T = 20 (alpha 0.5: the paper weighs "
    "its two terms equally) from a ResNet-D teacher trained with every refinement before KD; the student "
    "keeps label smoothing under KD, as the paper's does. Every row trains the same epochs."
)


def combination_notes(spec: Mapping[str, Any]) -> list[str]:
    """How to read a stored study's groups (how label smoothing meets distillation; for the paper
    study, how its recipe meets the config's rules), for the study page's footnote."""
    if spec["kind"] == "preset":
        return [PAPER_NOTE if spec["preset"] == PAPER_PRESET else PRESET_COMBINATION]
    switches = spec["grid"]["switches"]
    smoothed = {"label_smoothing", "tricks.label_smoothing"} & set(switches) or spec["overrides"].get(
        "tricks.label_smoothing"
    )
    return [GRID_COMBINATION] if "kd" in switches and smoothed else []
