"""Request and response bodies of /api/v1/studies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, WithJsonSchema, model_validator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema

from backend.models import RunStatus
from backend.schemas.config import CONFIG_KEYS, overrides_schema
from backend.schemas.runs import Priority
from backend.schemas.study_spec import (
    STUDY_KEYS,
    SWITCHES,
    TEACHER_ONLY_FORBIDDEN,
    TEACHER_PREFIX,
    PresetKey,
    Role,
    StudyKind,
)
from trainer.config import Int, Name

Metric = Literal["valid", "test"]

_RUN_KEYS = [key for key in CONFIG_KEYS if key not in STUDY_KEYS]
_TEACHER_KEYS = [TEACHER_PREFIX + key for key in _RUN_KEYS if key.partition(".")[0] not in TEACHER_ONLY_FORBIDDEN]
StudyOverrides = Annotated[dict[str, Any], overrides_schema(_RUN_KEYS + _TEACHER_KEYS)]
# A value a grid sweeps: whatever a RunConfig key takes (a section's keys as an object).
GRID_VALUE = {"anyOf": [{"type": kind} for kind in ("boolean", "number", "string", "object", "null")]}
GridSwitches = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"enum": [switch.name for switch in SWITCHES] + _RUN_KEYS},
            # Each item typed, so that generated clients keep the model (a bare array has no item type).
            "additionalProperties": {"anyOf": [{"const": True}, {"type": "array", "minItems": 1, "items": GRID_VALUE}]},
        }
    ),
]


class StudyGrid(BaseModel):
    model_config = ConfigDict(extra="forbid")

    switches: GridSwitches = Field(
        min_length=1,
        description="trick name (cosine, label_smoothing, kd, mixup_alpha, warmup_epochs, no_bias_decay) or a "
        "dotted RunConfig key, mapped to true (the trick off and on) or to a list of values; the first value of "
        "every switch makes the baseline",
        examples=[{"cosine": True, "kd": True, "mixup_alpha": [0, 0.2]}],
    )


PRESET_HELP = (
    "seed: the report's 16 runs (T, T-LS, base, a-i2); paper: the paper's refinements added one per row (baseline, "
    "+ linear scaling and warmup, + zero-init, + no bias decay, + ResNet-D, + cosine, + label smoothing, + mixup, "
    "+ KD) after its ResNet-D teacher, all from scratch"
)
GRID_HELP = "instead of a preset: the cartesian product of trick switches"


class _StudyFields(BaseModel):
    """What every study request holds besides its design (a preset or a grid)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    overrides: StudyOverrides = Field(
        default_factory=dict,
        description="dotted RunConfig keys applied to every run; keys starting with `teacher.` apply to the teacher "
        "runs only, after the others",
        examples=[
            {
                "model.arch": "resnet18",
                "model.pretrained": False,
                "data.image_size": 32,
                "epochs": 2,
                "teacher.model.arch": "resnet34",
            }
        ],
    )
    seeds: Int = Field(1, ge=1, le=20, description="replicates of every run, with seeds seed, seed+1, ...")
    priority: Priority = Field(0, description="queue priority of every run")


# The two designs as the schema names them, each complete, so that a client generated from the schema
# has both (properties beside an inline oneOf are lost, and its inline objects made twice).
class StudyFromPreset(_StudyFields):
    """A study of a preset."""

    preset: PresetKey = Field(description=PRESET_HELP)
    grid: None = None


class StudyFromGrid(_StudyFields):
    """A study of a grid of switches."""

    grid: StudyGrid = Field(description=GRID_HELP)
    preset: None = None


class StudyCreate(_StudyFields):
    """A preset or a grid, not both. One model, so that either one missing (or both given) is one
    clear error; its schema is the two designs'."""

    preset: PresetKey | None = Field(None, description=PRESET_HELP)
    grid: StudyGrid | None = Field(None, description=GRID_HELP)

    @model_validator(mode="after")
    def _one_design(self) -> StudyCreate:
        if (self.preset is None) == (self.grid is None):
            raise ValueError("preset: give either a preset or a grid" + (", not both" if self.preset else ""))
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        # Through the generator itself (not the handler, which inlines), so that each design is a component.
        generator: GenerateJsonSchema = handler.generate_json_schema  # type: ignore[attr-defined]
        designs = (StudyFromPreset, StudyFromGrid)
        return {
            "oneOf": [generator.generate_inner(design.__pydantic_core_schema__) for design in designs],
            "title": "StudyCreate",
            "description": "A preset or a grid, not both.",
        }

    @property
    def switches(self) -> dict[str, Any] | None:
        return self.grid.switches if self.grid else None


class StudyRunPublic(BaseModel):
    run_id: int = Field(description="the run's id")
    seed: int = Field(description="the run's seed")
    status: RunStatus | None = Field(description="null when the run was deleted")
    reused: bool = Field(description="an identical run (config and seed) had already succeeded: no new run")


class StudyGroupPublic(BaseModel):
    key: str
    title: str
    role: Role
    teacher: str | None = Field(description="key of the teacher group its runs distil from")
    tricks: str
    reported_top1: float | None = Field(description="the report's own peak valid top-1 (%), for preset runs")
    reported_top5: float | None = Field(description="the report's own top-5 (%) at its peak epoch, for preset runs")
    runs: list[StudyRunPublic]


class StudyPublic(BaseModel):
    id: int = Field(description="the study's id")
    name: str
    created_by: str | None = Field(description="name of the token that created it; null on an open server")
    created_at: datetime
    kind: StudyKind
    preset: str | None
    grid: dict[str, Any] | None
    overrides: dict[str, Any]
    seeds: list[int]
    priority: int = Field(description="the priority its runs were queued with: higher runs first")
    baseline: str = Field(description="key of the group the deltas are measured against")
    baseline_run_id: int | None = Field(description="the first run of the baseline group; null when it was deleted")
    groups: list[StudyGroupPublic]
    progress: dict[str, int] = Field(description="distinct runs per status, with total and reused")
    finished: bool = Field(description="no run of the study is queued or running")
    estimated_seconds: float | None = Field(
        description="the wall time estimated when the study was created (as its preview said; estimate_basis "
        "names the runs it left out); null where it timed none, or the study was created before estimates were kept"
    )
    estimate_basis: str | None = Field(description="where that estimate came from (the preview's basis)")
    took_seconds: float | None = Field(
        description="once the study is finished: from its first run's start to its last run's end (its own "
        "runs, not the reused ones); null before, or when none of its runs started"
    )
    skipped: list[dict[str, Any]] = Field(description="grid cells left out because the combination is invalid")
    notes: list[str] = Field(description="how to read the study's groups, e.g. how label smoothing meets distillation")
    updated_by: str | None = Field(
        None, description="name of the token that renamed it last; null on an open server or before any rename"
    )
    updated_at: datetime | None = Field(None, description="when it was renamed last; null before any rename")


class StudyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="the study's new name (1 to 200 characters, no control characters)")


class StudyPreview(BaseModel):
    """What a study request would queue, and about how long it would take; nothing is written."""

    groups: int = Field(description="groups the study would have")
    seeds: list[int]
    runs: int = Field(description="distinct runs of the study (identical groups share theirs)")
    new_runs: int = Field(description="runs that would be queued")
    reused_runs: int = Field(description="identical runs (config and seed) that already succeeded")
    epochs: int = Field(description="epochs the new runs train in all")
    skipped: int = Field(description="grid cells left out because the combination is invalid")
    seconds: float = Field(
        description="estimated wall time of the new runs; a run with nothing measured of its kind and no FLOPs "
        "entry for its model is left out, and basis says so"
    )
    device: Literal["cpu", "cuda"] = Field(description="what the estimate assumes the runs train on")
    parallel: int = Field(description="runs the estimate assumes train at once")
    workers: int = Field(description="living workers; 0: nothing starts until one does")
    basis: str = Field(
        description="where the estimate comes from, e.g. 'from 3 finished resnet18 runs at 64 px (41 img/s) on "
        "2 CPU cores' or 'rough: from the FLOPs table, nothing measured yet on the CPU'"
    )
    source: Literal["measured", "mixed", "rough", "none"] = Field(
        description="measured: every new run timed from the throughput the workers measured on finished runs of "
        "the same model, image size and device; rough: from the FLOPs table alone; mixed: some of each; none: "
        "nothing timed"
    )
    warnings: list[str] = Field(
        description="what the batch does to the training split: larger than it (one step per epoch), or a large "
        "share of it left out of each epoch (runtime.compile trains full batches only); and a run whose training "
        "step is estimated to need more GPU memory than any living worker's GPU has"
    )


class StudiesPublic(BaseModel):
    data: list[StudyPublic]
    count: int = Field(description="studies in data")


class MetricStats(BaseModel):
    """One metric of one group: replicate values, mean +/- std, and the delta to the baseline."""

    values: list[float] = Field(description="one per succeeded run, in seed order")
    n: int = Field(description="succeeded runs the figures are taken over")
    mean: float | None = Field(description="mean over the seeds (%)")
    std: float | None = Field(description="sample standard deviation; null below two seeds")
    delta: float | None = Field(description="mean minus the baseline's mean, in points")
    ci_low: float | None = Field(description="lower end of the confidence interval of delta, in points (Welch)")
    ci_high: float | None = Field(description="upper end of the confidence interval of delta, in points (Welch)")
    p_value: float | None = Field(description="Welch's t, two-sided, of 'no difference'")
    df: float | None = Field(description="Welch–Satterthwaite degrees of freedom of the t test")
    within_noise: bool | None = Field(description="whether the interval holds 0; null without an interval")
    verdict: str = Field(description="baseline, helped, hurt, within noise, or why there is no interval")
    text: str = Field(description='e.g. "79.13 ± 0.21"')
    delta_text: str = Field(description='e.g. "+0.60p [-0.30, +1.50] p=0.21"')


class StudyTableRow(BaseModel):
    group: str
    title: str
    tricks: str
    role: Role
    is_baseline: bool
    run_ids: list[int]
    runs: int = Field(description="runs planned for the group (one per seed)")
    succeeded: int = Field(description="runs of the group that succeeded")
    top1: MetricStats
    top5: MetricStats
    report_top1: float | None = Field(
        description="the published number beside the row (the report's, or the paper's for the paper preset)"
    )
    report_top5: float | None = Field(description="the published top-5 (%) beside the row")
    report: str | None = Field(description='the published top-1 in the report\'s style, e.g. "79.13 (+0.60p)"')
    seconds_per_epoch: float | None = Field(description="mean training seconds per epoch over the group's runs")


class StudyTable(BaseModel):
    study_id: int = Field(description="the study's id")
    metric: Metric
    baseline: str
    confidence: float = Field(description="confidence level of the intervals, e.g. 0.95")
    method: str
    reference_column: str | None = Field(
        description='what the rows\' report numbers are, as a column title, e.g. "Paper, ImageNet (top-1)"; '
        "null for a grid"
    )
    reference: str | None = Field(description="where the report numbers come from and how to read them")
    note: str | None = Field(
        description="why no delta has an interval, when every row lacks it for the same reason (e.g. one seed "
        "per group): said here once, and left out of the rows' delta_text (their verdict keeps it)",
    )
    data: list[StudyTableRow]
    count: int = Field(description="rows in data")


class CurveBand(BaseModel):
    epoch: list[int]
    mean: list[float | None]
    std: list[float | None]
    n: list[int] = Field(description="runs that reached the epoch")


class GroupCurves(BaseModel):
    group: str
    title: str
    is_baseline: bool
    train_loss: CurveBand
    valid_top1: CurveBand
    valid_top5: CurveBand
    lr: CurveBand


class StudyCurves(BaseModel):
    study_id: int = Field(description="the study's id")
    epochs: int = Field(description="the longest run's planned epochs")
    data: list[GroupCurves]
    count: int = Field(description="groups in data")
