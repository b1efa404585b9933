"""What the API answers, as small typed models. Each allows fields it does not name, so a newer server's
additions reach the script (as attributes and in ``model_dump()``) instead of breaking it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class Resource(BaseModel):
    model_config = ConfigDict(extra="allow")


class Health(Resource):
    status: str


class Run(Resource):
    id: int
    name: str
    kind: str
    status: str
    priority: int
    config: dict[str, Any]
    study_id: int | None = None
    attempt: int = 0
    error: str | None = None
    pruned: str | None = None  # why a sweep stopped it early (it ends cancelled): its rung and figures
    cancel_requested: bool = False
    created_by: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    epoch: int = 0
    epochs: int
    start_epoch: int = 0
    world_size: int | None = None
    devices: str | None = None
    device_fallback: str | None = None
    test_top1: float | None = None  # of the kept checkpoint (lowest valid loss), at checkpoint_epoch
    test_top5: float | None = None
    checkpoint_epoch: int | None = None
    peak_epoch: int | None = None  # the highest valid top-1, earliest on a tie: the report's figure
    peak_valid_top1: float | None = None
    peak_valid_top5: float | None = None
    notes: str = ""  # Markdown, as written; notes_html is it rendered (no raw HTML, http(s) links only)
    notes_html: str = ""
    tags: list[str] = []
    archived_at: datetime | None = None
    updated_by: str | None = None  # the latest change of name, notes, tags or archive: who and when
    updated_at: datetime | None = None
    # Handed to Slurm (tricklab worker --slurm): the latest attempt's job, in words ("Slurm 4121 on gpu[03-04]")
    slurm: str | None = None
    slurm_job_id: int | None = None
    slurm_nodes: str | None = None
    slurm_restarts: int | None = None
    slurm_state: str | None = None  # as squeue last gave it: PENDING, RUNNING...
    slurm_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES


class RunPage(Resource):
    """One page of runs; ``count`` is every run the filters match, all pages together;
    ``next_cursor`` asks for the page after this one (None on the last)."""

    data: list[Run]
    count: int
    next_cursor: str | None = None


class FigureSpread(Resource):
    n: int
    mean: float | None
    std: float | None


class RunGroup(Resource):
    """The seeds of one configuration: its runs and each figure's mean and standard deviation."""

    configuration: str
    name: str
    count: int
    run_ids: list[int]
    seeds: list[int]
    statuses: dict[str, int]
    peak_valid_top1: FigureSpread
    peak_valid_top5: FigureSpread
    test_top1: FigureSpread
    test_top5: FigureSpread


class RunGroupPage(Resource):
    data: list[RunGroup]
    count: int


class EpochMetrics(Resource):
    """One stored epoch of one run (the timing fields come as extra fields where the server has them)."""

    run_id: int
    epoch: int
    attempt: int
    train_loss: float | None = None
    train_top1: float | None = None
    train_top5: float | None = None
    valid_loss: float | None = None
    valid_top1: float | None = None
    valid_top5: float | None = None
    lr: float | None = None
    seconds: float | None = None
    images_per_s: float | None = None


class RunColumns(Resource):
    """One run's epochs as arrays: ``epoch`` and each requested field (an extra field, e.g. ``valid_top1``)."""

    run_id: int
    epoch: list[int]


class MetricColumns(Resource):
    fields: list[str]
    data: list[RunColumns]
    count: int
    missing: list[int]
    etag: str | None = None  # from the answer's header: pass it as if_none_match to skip unchanged rows


class CompareRow(Resource):
    run_id: int
    name: str
    status: str
    tricks: str
    is_baseline: bool
    epoch: int | None = None  # the peak (highest valid top-1) or the final epoch, by the comparison's mode
    top1: float | None = None
    top5: float | None = None
    top1_delta: float | None = None
    top5_delta: float | None = None
    top1_text: str = ""
    checkpoint_epoch: int | None = None  # the kept checkpoint's (lowest valid loss): the test figures' epoch
    test_top1: float | None = None
    test_top5: float | None = None


class Comparison(Resource):
    data: list[CompareRow]
    count: int
    mode: Literal["peak", "final"]
    baseline: int
    missing: list[int]


class StudyRun(Resource):
    run_id: int
    seed: int
    status: str | None
    reused: bool


class StudyGroup(Resource):
    key: str
    title: str
    role: str
    runs: list[StudyRun]


class Study(Resource):
    id: int
    name: str
    kind: str
    preset: str | None = None
    grid: dict[str, Any] | None = None
    overrides: dict[str, Any]
    seeds: list[int]
    baseline: str
    baseline_run_id: int | None = None
    groups: list[StudyGroup]
    progress: dict[str, int]
    finished: bool
    created_at: datetime
    created_by: str | None = None
    # The estimate made when the study was created, beside the time it took once finished.
    estimated_seconds: float | None = None
    estimate_basis: str | None = None
    took_seconds: float | None = None
    updated_by: str | None = None  # the latest rename: who and when
    updated_at: datetime | None = None

    @property
    def run_ids(self) -> list[int]:
        """Each distinct run of the study once, in id order (identical groups share runs)."""
        return sorted({run.run_id for group in self.groups for run in group.runs})


class StudyPage(Resource):
    data: list[Study]
    count: int


class StudyPreview(Resource):
    groups: int
    seeds: list[int]
    runs: int
    new_runs: int
    reused_runs: int
    epochs: int
    seconds: float
    workers: int
    basis: str = ""  # where ``seconds`` comes from: measured throughput, or rough from the FLOPs table
    source: str = ""  # measured, rough, mixed or none
    warnings: list[str] = []  # what the batch does to the training split


class Effect(Resource):
    effect: str
    kind: str
    estimate: float
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    text: str


class StudyEffects(Resource):
    study_id: int
    metric: str
    data: list[Effect]
    count: int
    not_estimable: list[dict[str, Any]]
    sentence: str


class LRRangeTestCreated(Resource):
    id: int
    status: str


class CurvePoint(Resource):
    step: int
    lr: float
    loss: float | None = None
    smoothed: float | None = None


class LRRangeTest(Resource):
    id: int
    name: str
    status: str
    error: str | None = None
    config: dict[str, Any]
    sweep: dict[str, Any]
    curve: list[CurvePoint]
    minimum: CurvePoint | None = None
    suggestion: float | None = None
    findings: list[str]


class Device(Resource):
    device: str
    kind: str
    name: str | None = None
    memory_gib: float | None = None


class Worker(Resource):
    name: str
    devices: list[Device]
    alive: bool
    last_seen_at: datetime
    paused: str | None = None  # why it claims no run now (e.g. a full runs folder)


class Workers(Resource):
    data: list[Worker]
    count: int
    alive: int
    gpus: int


class RunEvent(Resource):
    """One message of a run's live stream: ``epoch`` carries a stored epoch; ``status`` (at the start and on
    each change) and ``end`` (once, when the run is final) carry the run."""

    event: Literal["epoch", "status", "end"]
    epoch: EpochMetrics | None = None
    run: Run | None = None


class RunFile(Resource):
    path: str  # relative to the run's folder, "/"-separated
    size: int
    modified_at: datetime
    kind: str  # config, metrics, result, checkpoint, tensorboard, log or other


class RunFiles(Resource):
    data: list[RunFile]
    count: int
    total_bytes: int
