"""Request and response bodies of /api/v1/runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.models import MAX_ID, FailureKind, RunKind, RunStatus
from backend.schemas.config import Overrides, RunConfigBody
from backend.schemas.organise import Notes, Tag
from trainer.config import NUMBER, Bool, Name

# Queue priorities: a small range is all an ordering needs, and it keeps every value in a column.
Priority = Annotated[int, Field(ge=-1000, le=1000), NUMBER]


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: RunConfigBody = Field(
        default_factory=dict,
        description="a RunConfig; keys left out take their defaults. tricks.kd.teacher may be a run id. "
        "Beyond this schema, a 422 also names a data.root or model.weights_path outside the server's data "
        "roots, a teacher that is not a finished run, and settings that rule each other out "
        "(warmup with OneCycle, zero_init_residual with pretrained weights)",
        examples=[
            {
                "name": "demo",
                "epochs": 3,
                "model": {"arch": "resnet18", "pretrained": False},
                "data": {"root": "data", "image_size": 64},
            }
        ],
    )
    priority: Priority = Field(0, description="higher runs first; ties run oldest first")


class RunClone(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overrides: Overrides = Field(
        default_factory=dict,
        description="dotted RunConfig keys to change; the resulting config is checked as a new run's is",
        examples=[{"tricks.label_smoothing": 0.1}],
    )
    name: Name | None = Field(None, description="default: derived from the overrides")
    priority: Priority | None = Field(None, description="default: the source run's")


MAX_TAGS = 32  # per request's add_tags and remove_tags, and per run


class RunUpdate(BaseModel):
    """What may change on a run: its place in the queue, its name, notes and tags, whether it is
    archived. Fields left out stay as they are; each change records who made it and when."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority | None = Field(
        None, description="higher runs first, ties oldest first; only a queued run's priority can change", examples=[10]
    )
    name: Name | None = Field(None, description="a new name (1 to 200 characters, no control characters)")
    notes: Notes | None = Field(
        None, description='what the run is for, in Markdown (HTML is shown as text); replaces the notes; "" clears'
    )
    add_tags: list[Tag] = Field(
        default_factory=list, max_length=MAX_TAGS, description="tags to add", examples=[["keep"]]
    )
    remove_tags: list[Tag] = Field(
        default_factory=list, max_length=MAX_TAGS, description="tags to remove; one the run lacks is no error"
    )
    archived: Bool | None = Field(
        None, description="true hides a finished run from the default list (kept, with its files); false restores it"
    )

    def given(self) -> set[str]:
        """The fields that change something: not left out, null or an empty list."""
        return {field for field in self.model_fields_set if getattr(self, field) not in (None, [])} - {"run_ids"}

    @model_validator(mode="after")
    def _something(self) -> RunUpdate:
        if not self.given():
            raise ValueError("nothing to change: give priority, name, notes, add_tags, remove_tags or archived")
        both = set(self.add_tags) & set(self.remove_tags)
        if both:
            raise ValueError(f"tag {sorted(both)[0]!r} is both added and removed")
        return self


class RunsUpdate(RunUpdate):
    """The same change to several runs at once: all of them change, or none (a 404 or 409 names the run)."""

    run_ids: list[Annotated[int, Field(ge=1, le=MAX_ID), NUMBER]] = Field(
        min_length=1, max_length=1000, description="the runs to change", examples=[[1, 2]]
    )


class RunPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="the run's id")
    name: str
    kind: RunKind = Field(description="training: a run; lr_range: an LR range test (see /api/v1/lr-range-tests)")
    status: RunStatus
    priority: int = Field(description="higher runs first; ties run oldest first")
    config: dict[str, Any]
    config_hash: str = Field(description="RunConfig.fingerprint(): equal for replicates")
    depends_on: int | None = Field(description="the teacher run, when the config names one by id")
    study_id: int | None = Field(description="the study the run belongs to; null for a single run")
    attempt: int = Field(description="claims so far; each claim adds one")
    max_attempts: int = Field(description="training failures after which the run stays failed")
    training_failures: int = Field(description="attempts that failed in training (they count against max_attempts)")
    infrastructure_failures: int = Field(
        description="attempts ended by the worker's host (a stopped worker): always requeued"
    )
    worker: str | None
    failure_kind: FailureKind | None = Field(description="kind of the latest failure, kept if a retry succeeds")
    error: str | None = Field(description="message of the latest failure (the trainer's last stderr lines)")
    pruned: str | None = Field(
        None,
        description="why a sweep stopped it early (it ends cancelled): at which rung, against which figures",
    )
    cancel_requested: bool
    created_by: str | None = Field(description="name of the token that queued it; null on an open server")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    epoch: int = Field(0, description="latest stored epoch")
    epochs: int = Field(description="epochs the run is configured to train")
    start_epoch: int = Field(description="epoch the latest attempt resumed after (0 = from scratch)")
    start_step: int | None = Field(
        None,
        description="the global step the latest attempt resumed at, in epoch start_epoch + 1, from the mid-epoch "
        "checkpoint the warning signal (Slurm's, before a time limit or preemption) made; null from an epoch's end",
    )
    world_size: int | None = Field(description="processes training the latest attempt (null until it starts)")
    devices: str | None = Field(description='what the latest attempt trains on, e.g. "4 × H200", "2 × CPU (gloo)"')
    device_fallback: str | None = Field(
        description="why the latest attempt trains on the CPU although runtime.device is auto: CUDA could not be "
        "used (no driver, a driver too old for the trainer's PyTorch, no GPU visible); null when it trains where asked"
    )
    # Two epochs, one word each: the checkpoint (lowest valid loss, the weights the trainer kept and
    # tested) and the peak (highest valid top-1, the report's figure). They often differ.
    test_loss: float | None = Field(description="cross-entropy of the kept checkpoint on the test split")
    test_top1: float | None = Field(description="test top-1 (%) of the kept checkpoint, from checkpoint_epoch")
    test_top5: float | None = Field(description="test top-5 (%) of the kept checkpoint, from checkpoint_epoch")
    checkpoint_epoch: int | None = Field(
        description="epoch of the kept checkpoint: the lowest valid loss (the earliest on a tie); null until the run "
        "succeeds"
    )
    checkpoint_valid_loss: float | None = Field(description="valid loss (cross-entropy) of checkpoint_epoch")
    checkpoint_valid_top1: float | None = Field(description="valid top-1 (%) of checkpoint_epoch")
    checkpoint_valid_top5: float | None = Field(description="valid top-5 (%) of checkpoint_epoch")
    peak_epoch: int | None = Field(
        None,
        description="the peak epoch so far: the highest valid top-1 (the report's figure), earliest on a tie; "
        "null before any epoch",
    )
    peak_valid_top1: float | None = Field(None, description="valid top-1 (%) of peak_epoch")
    peak_valid_top5: float | None = Field(
        None, description="valid top-5 (%) of peak_epoch (not the highest top-5 of any epoch)"
    )
    seconds_per_epoch: float | None = Field(None, description="mean training seconds of the stored epochs")
    images_per_s: float | None = Field(None, description="mean training images per second of the stored epochs")
    data_wait_share: float | None = Field(
        None,
        description="mean share (0-1) of the training passes spent waiting for batches; null before it was measured",
    )
    data_wait_hint: str | None = Field(
        None, description="why the run waits for its data and what to change, when the share is over 20%"
    )
    run_dir: str
    notes: str = Field("", description="what the run is for, in Markdown, as written")
    notes_html: str = Field(
        "", description="the notes rendered: Markdown without raw HTML (shown as text), links to http(s) only"
    )
    tags: list[str] = Field(default_factory=list, description="the run's tags, sorted")
    archived_at: datetime | None = Field(None, description="when it was archived (hidden from the default list)")
    updated_by: str | None = Field(
        None,
        description="name of the token that made the latest change (name, notes, tags, archive); null on an open "
        "server or before any change",
    )
    updated_at: datetime | None = Field(None, description="when that change was made; null before any")
    disk_bytes: int | None = Field(
        None,
        description="bytes of the run's folder as last measured (by its worker at each epoch and at the end of "
        "each attempt, and by `tricklab gc`); null until measured. GET /runs/{id}/files measures it now",
    )

    slurm_job_id: int | None = Field(
        None, description="the Slurm job of the latest attempt (`tricklab worker --slurm`)"
    )
    slurm_nodes: str | None = Field(None, description="the job's node list, as Slurm writes it (gpu[03-04])")
    slurm_restarts: int | None = Field(None, description="times Slurm requeued the job (preemption, requeue)")
    slurm_state: str | None = Field(None, description="the job's state as squeue last gave it (PENDING, RUNNING...)")
    slurm_reason: str | None = Field(
        None, description="why the job waits, as squeue gives it (Priority, Resources, BeginTime...), when it does"
    )

    slurm: str | None = Field(
        None,
        description='where the run is in Slurm, in words: "Slurm 4121 on gpu[03-04]", or "queued in Slurm '
        '(Priority)" while its job waits; null for a run not handed to Slurm',
    )

    @model_validator(mode="after")
    def _slurm_words(self) -> RunPublic:
        if self.slurm_job_id is None:
            self.slurm = None
        elif self.status == RunStatus.running and self.slurm_state == "PENDING":
            self.slurm = f"queued in Slurm ({self.slurm_reason})" if self.slurm_reason else "queued in Slurm"
        else:
            where = f"Slurm {self.slurm_job_id}" + (f" on {self.slurm_nodes}" if self.slurm_nodes else "")
            self.slurm = where + (f", requeued {self.slurm_restarts}×" if self.slurm_restarts else "")
        return self


class RunsPublic(BaseModel):
    data: list[RunPublic]
    count: int = Field(description="runs matching the filters, all pages together")
    next_cursor: str | None = Field(
        None, description="pass as cursor for the next page in the same sort; null on the last page"
    )


class FigureSpread(BaseModel):
    n: int = Field(description="runs of the group with this figure")
    mean: float | None = Field(description="mean of the figure over the runs that have it; null when none has")
    std: float | None = Field(description="sample standard deviation (n - 1); null below two values")


class RunGroupPublic(BaseModel):
    configuration: str = Field(description="the config's fingerprint without the seed, shared by the group's runs")
    name: str = Field(description="the newest run's name")
    count: int = Field(description="runs in the group that match the filter")
    run_ids: list[int] = Field(description="newest first")
    seeds: list[int] = Field(description="their seeds, in the same order")
    statuses: dict[str, int] = Field(description="runs per status")
    peak_valid_top1: FigureSpread
    peak_valid_top5: FigureSpread
    test_top1: FigureSpread
    test_top5: FigureSpread


class RunGroupsPublic(BaseModel):
    data: list[RunGroupPublic]
    count: int = Field(description="groups matching the filters, all pages together")
