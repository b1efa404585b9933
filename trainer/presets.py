"""The seed study's runs as data (``STUDY``), the paper's recipe as a study (``PAPER``), plus a CPU demo.

The seed study is the student report this project started from: the Bag-of-Tricks ablation
(He et al., CVPR 2019) on CUB-200-2011, a ResNet50 student fine-tuned from ImageNet weights and
ResNet152 teachers (``T``, ``T-LS``), with the runs base, a (cosine), b (label smoothing), c (KD),
d1-d4 (mixup alpha 1, 0.2, 0.1, 0.01), e-h (their pairs and triple) and i1-i2 (all of them with
mixup). Each preset keeps the report's peak valid top-1/top-5, so a reproduction can be read
against it; this module is the report's table.

Each preset is a set of dotted RunConfig overrides on top of the defaults, which are already the
report's base run (ResNet50, pretrained, Adam at 1e-3 with the discriminative rates, OneCycle,
batch 64, 10 epochs). A distillation preset names the teacher *preset* it needs (``T`` or ``T-LS``):
which finished run plays that teacher is decided when the study is launched, so the teacher id is
never part of the overrides.

Label smoothing and distillation combine as the report combined them (runs g, h, i1, i2): the
student keeps the plain distillation loss, whose task term is unsmoothed cross-entropy, and the
smoothing enters only through its teacher, T-LS, the ResNet152 trained with label smoothing. A
student with ``tricks.label_smoothing > 0`` and a teacher is the paper's combination instead.

A title names the report's models; ``Preset.title_for`` names the architecture a run really has,
for a study whose overrides shrink the models.

``PAPER`` is the paper's own recipe (He et al., Table 6's order) as a study on the same data: each
row adds one refinement to the one before (``PAPER_STEPS``): baseline, + linear scaling and warmup,
+ zero-init of the last BN gamma, + no bias decay, + ResNet-D, + cosine, + label smoothing, + mixup,
+ KD, with the paper's settings where they differ from the report's (5 warmup epochs, mixup alpha
0.2, KD T = 20). How its order meets the config's rules:

- The whole study trains from scratch (``model.pretrained: false``), as the paper does on ImageNet:
  zero-init is only allowed without pretrained weights, and starting the rows before it from
  ImageNet weights would make that row change two things.
- The baseline is the paper's, SGD (momentum 0.9, weight decay 1e-4) at 0.1 with one rate for every
  layer (no discriminative rates from scratch), at the report's batch 64, with a *constant* rate:
  warmup needs cosine or constant (OneCycle brings its own), and the paper's step decay has no
  schedule here. The cosine row replaces the constant rate and keeps the warmup ahead of it.
- Linear scaling at batch 64 is 0.1 x 64 / 256; ResNet-D is timm's -D variant of the run's ResNet.
- KD learns from a ResNet-152-D teacher trained with every refinement before KD, mixup included (the
  paper's teacher of its mixup student). The paper weighs its two terms equally, CE + T^2 KL, so
  alpha is 0.5 (half the paper's loss, which the rate absorbs); its student smooths its own
  hard-label term, so label smoothing stays on in the KD row.
- Every row trains as many epochs as the others (the paper trains its mixup rows longer), so each
  difference is one refinement's.

The paper's ImageNet top-1 is kept for the baseline (75.3) and the last row, all refinements
(79.29); the other rows are left empty rather than quoted from memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

TeacherKey = Literal["T", "T-LS"]

_COSINE = {"schedule.name": "cosine"}
_LS = {"tricks.label_smoothing": 0.1}
_RESNET152 = {"model.arch": "resnet152"}


def arch_title(arch: str) -> str:
    """ "resnet50" as the report writes it: "ResNet50"; another family's name as it is ("efficientnet_b0")."""
    depth = arch.removeprefix("resnet")
    return "ResNet" + depth if depth[:1].isdigit() else arch


@dataclass(frozen=True)
class Preset:
    key: str
    # "{arch}" stands for the run's architecture, e.g. "Teacher: {arch}".
    title_template: str
    overrides: Mapping[str, Any]
    teacher: TeacherKey | None = None
    # The report's peak valid result, to put next to a reproduction.
    reported_top1: float | None = None
    reported_top5: float | None = None

    @property
    def arch(self) -> str:
        return str(self.overrides.get("model.arch", "resnet50"))

    @property
    def title(self) -> str:
        """The title with the report's own model, e.g. "Teacher: ResNet152"."""
        return self.title_for(self.arch)

    def title_for(self, arch: str) -> str:
        """The title of a run of this preset whose model is ``arch``, e.g. "Teacher: ResNet34"."""
        return self.title_template.format(arch=arch_title(arch))

    def values(self) -> dict[str, Any]:
        """The overrides with the run name, as dotted keys (what a form or the CLI's --set takes)."""
        return {"name": self.key, **self.overrides}


def _preset(
    key: str,
    title: str,
    *parts: Mapping[str, Any],
    teacher: TeacherKey | None = None,
    reported: tuple[float, float] | None = None,
) -> Preset:
    overrides: dict[str, Any] = {}
    for part in parts:
        overrides.update(part)
    top1, top5 = reported or (None, None)
    return Preset(key, title, MappingProxyType(overrides), teacher, top1, top5)


def _mixup(alpha: float) -> dict[str, Any]:
    return {"tricks.mixup_alpha": alpha}


# The report's base run made small enough to train in seconds per epoch on a CPU, on the generated
# demo dataset (no ImageNet weights to download). Not part of the study.
DEMO = _preset(
    "demo",
    "Demo (CPU): ResNet18 from scratch, 64 px, 8 epochs",
    {
        "model.arch": "resnet18",
        "model.pretrained": False,
        "data.image_size": 64,
        "batch_size": 32,
        "epochs": 8,
    },
)

# In the report's order; the KD hyper-parameters (alpha 0.1, T 10) are RunConfig's defaults. g, h,
# i1 and i2 are "+ LS + KD" in the report's words, but their student is not smoothed: T-LS is.
STUDY: tuple[Preset, ...] = (
    _preset("base", "{arch} base (OneCycle)", reported=(78.53, 93.82)),
    _preset("T", "Teacher: {arch}", _RESNET152, reported=(80.49, 96.61)),
    _preset("T-LS", "Teacher: {arch} + label smoothing", _RESNET152, _LS, reported=(82.78, 96.34)),
    _preset("a", "a: + cosine", _COSINE, reported=(79.13, 95.77)),
    _preset("b", "b: + label smoothing", _LS, reported=(81.55, 96.17)),
    _preset("c", "c: + KD", teacher="T", reported=(81.36, 96.90)),
    _preset("d1", "d1: + mixup alpha=1", _mixup(1.0), reported=(5.27, 24.24)),
    _preset("d2", "d2: + mixup alpha=0.2", _mixup(0.2), reported=(35.53, 78.05)),
    _preset("d3", "d3: + mixup alpha=0.1", _mixup(0.1), reported=(51.92, 91.21)),
    _preset("d4", "d4: + mixup alpha=0.01", _mixup(0.01), reported=(80.13, 96.38)),
    _preset("e", "e: + cosine + LS", _COSINE, _LS, reported=(81.20, 96.44)),
    _preset("f", "f: + cosine + KD", _COSINE, teacher="T", reported=(81.44, 96.79)),
    _preset("g", "g: + LS + KD", teacher="T-LS", reported=(81.84, 96.09)),
    _preset("h", "h: + cosine + LS + KD", _COSINE, teacher="T-LS", reported=(82.09, 95.77)),
    _preset(
        "i1",
        "i1: + cosine + LS + KD + mixup alpha=0.2",
        _COSINE,
        _mixup(0.2),
        teacher="T-LS",
        reported=(79.49, 95.98),
    ),
    _preset(
        "i2",
        "i2: + cosine + LS + KD + mixup alpha=0.01",
        _COSINE,
        _mixup(0.01),
        teacher="T-LS",
        reported=(81.43, 96.30),
    ),
)

# --- the paper's recipe, one refinement per row (see the module's docstring) -------------------------

PAPER_BASELINE: Mapping[str, Any] = MappingProxyType(
    {
        "model.pretrained": False,
        "optim.name": "sgd",
        "optim.lr": 0.1,
        "optim.momentum": 0.9,
        "optim.weight_decay": 1e-4,
        **{f"optim.layer_lr_divisors.{group}": 1.0 for group in ("stem", "layer1", "layer2", "layer3", "layer4", "fc")},
        "schedule.name": "constant",
    }
)
PAPER_WARMUP_EPOCHS = 5.0
PAPER_MIXUP_ALPHA = 0.2
PAPER_KD = {"tricks.kd.temperature": 20.0, "tricks.kd.alpha": 0.5}
PAPER_TEACHER_ARCH = "resnet152d"
RESNET_D = "model.arch"  # the ResNet-D row's key: the baseline's ResNet with the -D tweak


@dataclass(frozen=True)
class Refinement:
    """One row of the paper study: what it adds to the row before."""

    key: str
    title: str
    adds: Mapping[str, Any]
    reported_top1: float | None = None


PAPER_STEPS: tuple[Refinement, ...] = (
    Refinement("base", "{arch} baseline (SGD from scratch, constant rate)", {}, reported_top1=75.3),
    Refinement(
        "scaling-warmup",
        "+ linear scaling and warmup",
        {"optim.linear_scaling": True, "schedule.warmup_epochs": PAPER_WARMUP_EPOCHS},
    ),
    Refinement("zero-init", "+ zero-init of the last BN gamma", {"model.zero_init_residual": True}),
    Refinement("no-bias-decay", "+ no bias decay", {"optim.no_bias_decay": True}),
    Refinement("resnet-d", "+ ResNet-D ({arch})", {RESNET_D: "resnet50d"}),
    Refinement("cosine", "+ cosine", {"schedule.name": "cosine"}),
    Refinement("label-smoothing", "+ label smoothing", {"tricks.label_smoothing": 0.1}),
    Refinement("mixup", "+ mixup alpha=0.2", {"tricks.mixup_alpha": PAPER_MIXUP_ALPHA}),
    Refinement("kd", "+ KD T=20 (all refinements)", PAPER_KD, reported_top1=79.29),
)
PAPER_TEACHER: TeacherKey = "T"


def _paper() -> tuple[Preset, ...]:
    rows: list[Preset] = []
    overrides: dict[str, Any] = dict(PAPER_BASELINE)
    for step in PAPER_STEPS:
        overrides.update(step.adds)
        teacher: TeacherKey | None = PAPER_TEACHER if step.key == "kd" else None
        rows.append(Preset(step.key, step.title, MappingProxyType(dict(overrides)), teacher, step.reported_top1))
    before_kd = dict(rows[-2].overrides)
    title = "Teacher: {arch} with every refinement but KD"
    teacher_row = Preset(PAPER_TEACHER, title, MappingProxyType({**before_kd, RESNET_D: PAPER_TEACHER_ARCH}))
    return (teacher_row, *rows)


# The teacher first, then the rows in the paper's order. Not launch-form presets: their keys are the
# paper study's groups, and a row means little outside its study.
PAPER: tuple[Preset, ...] = _paper()

PRESETS: tuple[Preset, ...] = (DEMO, *STUDY)
PRESETS_BY_KEY: Mapping[str, Preset] = MappingProxyType({preset.key: preset for preset in PRESETS})


def get_preset(key: str) -> Preset:
    try:
        return PRESETS_BY_KEY[key]
    except KeyError:
        raise KeyError(f"no preset {key!r}; choose one of {', '.join(PRESETS_BY_KEY)}") from None
