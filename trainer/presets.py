"""The seed study's runs as data (``STUDY``), plus a CPU demo.

The seed study is the student report this project started from: the Bag-of-Tricks ablation
(He et al., CVPR 2019) on CUB-200-2011, a ResNet50 student fine-tuned from ImageNet weights and
ResNet152 teachers (``T``, ``T-LS``), with the runs base, a (cosine), b (label smoothing), c (KD),
d1-d4 (mixup alpha 1, 0.2, 0.1, 0.01), e-h (their pairs and triple) and i1-i2 (all of them with
mixup). Each preset keeps the report's best-validation top-1/top-5, so a reproduction can be read
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
    """ "resnet50" as the report writes it: "ResNet50"."""
    return "ResNet" + arch.removeprefix("resnet")


@dataclass(frozen=True)
class Preset:
    key: str
    # "{arch}" stands for the run's architecture, e.g. "Teacher: {arch}".
    title_template: str
    overrides: Mapping[str, Any]
    teacher: TeacherKey | None = None
    # The report's best-validation result, to put next to a reproduction.
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

PRESETS: tuple[Preset, ...] = (DEMO, *STUDY)
PRESETS_BY_KEY: Mapping[str, Preset] = MappingProxyType({preset.key: preset for preset in PRESETS})


def get_preset(key: str) -> Preset:
    try:
        return PRESETS_BY_KEY[key]
    except KeyError:
        raise KeyError(f"no preset {key!r}; choose one of {', '.join(PRESETS_BY_KEY)}") from None
