"""What a study is: its vocabulary (presets, switches, the keys it sets itself) and its stored spec.

One home for the words the plan, the request schema, the report and the pages share, at the bottom
of the backend's layers so that each imports it downward. The report's own runs and the paper's
refinements stay in ``trainer.presets``; the labels of the tricks in ``backend.reports.labels``.

``StudySpec`` is what ``studies.spec`` holds (a JSON column): the layout fixed when the study was
created. Every reader goes through ``StudySpec.of``; every writer stores ``model_dump(mode="json")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from backend.models import Study
from trainer.presets import STUDY

SEED_PRESET = "seed"
PAPER_PRESET = "paper"
PresetKey = Literal["seed", "paper"]
PRESET_KEYS: tuple[PresetKey, ...] = ("seed", "paper")
StudyKind = Literal["preset", "grid"]
Role = Literal["teacher", "experiment"]

SEED_RUNS = len(STUDY)  # runs per seed of the seed preset
BASELINE_GROUP = "base"  # the key of the group the deltas are taken against, in a preset and a grid
TEACHER_PREFIX = "teacher."
# A grid grows as a product; past this many runs a typo (a long value list) is likelier than intent.
MAX_RUNS = 600
# Keys the study itself sets on each run.
STUDY_KEYS = {
    "name": "each run is named after the study, its group and its seed",
    "tricks.kd.teacher": "the study picks each student's teacher run (use the kd switch or the preset)",
}
TEACHER_ONLY_FORBIDDEN = {
    "seed": "a teacher takes the seed of the replicate it teaches",
    "data": "a teacher learns the students' dataset and classes",
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


@dataclass(frozen=True)
class Switch:
    """A trick a grid turns on and off. ``true`` in a request stands for ``default`` (off, then on).
    Its cells' labels are the report's (``backend.reports.labels.switch_label``)."""

    name: str
    title: str
    default: tuple[Any, Any] | None
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
    Switch("cosine", "Cosine decay (instead of OneCycle)", (False, True), when_on={"schedule.name": "cosine"}),
    Switch("label_smoothing", "Label smoothing epsilon", (0.0, 0.1), key="tricks.label_smoothing"),
    # The teacher is added by the study (one per label-smoothing value and seed), so "on" sets nothing here.
    Switch("kd", "Knowledge distillation", (False, True), when_on={}),
    Switch("mixup_alpha", "Mixup alpha", (0.0, 0.2), key="tricks.mixup_alpha"),
    Switch("warmup_epochs", "Warmup epochs (cosine or constant only)", (0.0, 1.0), key="schedule.warmup_epochs"),
    Switch(
        "no_bias_decay", "No weight decay on biases and norms", (False, True), when_on={"optim.no_bias_decay": True}
    ),
)
SWITCHES_BY_NAME: Mapping[str, Switch] = {switch.name: switch for switch in SWITCHES}


# --- the stored spec ----------------------------------------------------------------------------


class StudyRun(BaseModel):
    run_id: int
    seed: int
    reused: bool  # an identical run had already succeeded: no new run was queued


class StudyGroup(BaseModel):
    key: str
    title: str
    role: Role
    teacher: str | None  # key of the teacher group its runs distil from
    tricks: str
    reported_top1: float | None
    reported_top5: float | None
    runs: list[StudyRun]


class GridSpec(BaseModel):
    switches: dict[str, Any]


class SkippedCell(BaseModel):
    """A grid cell left out because its combination is invalid (warmup with OneCycle)."""

    cell: dict[str, Any]
    reason: str


class StudySpec(BaseModel):
    """A study's design and layout as created: the request's design, then its groups and their runs.
    Every stored spec since studies began has these keys."""

    kind: StudyKind
    preset: PresetKey | None
    grid: GridSpec | None
    overrides: dict[str, Any]
    seeds: list[int]
    priority: int
    baseline: str
    groups: list[StudyGroup]
    skipped: list[SkippedCell]

    @classmethod
    def of(cls, study: Study) -> StudySpec:
        return cls.model_validate(study.spec)

    @property
    def baseline_group(self) -> StudyGroup:
        return next(group for group in self.groups if group.key == self.baseline)

    def run_ids(self) -> list[int]:
        """The study's distinct runs (identical groups share theirs), in layout order."""
        return list(dict.fromkeys(run.run_id for group in self.groups for run in group.runs))
