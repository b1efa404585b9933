"""Request and response bodies of /api/v1/runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from backend.models import FailureKind, RunKind, RunStatus
from backend.schemas.config import Overrides, RunConfigBody
from trainer.config import NUMBER, Name

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


class RunUpdate(BaseModel):
    """What may change on a run once queued: its place in the queue."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority = Field(
        description="higher runs first, ties oldest first; only a queued run's priority can change",
        examples=[10],
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
    cancel_requested: bool
    created_by: str | None = Field(description="name of the token that queued it; null on an open server")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    epoch: int = Field(0, description="latest stored epoch")
    epochs: int = Field(description="epochs the run is configured to train")
    start_epoch: int = Field(description="epoch the latest attempt resumed after (0 = from scratch)")
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


class RunsPublic(BaseModel):
    data: list[RunPublic]
    count: int = Field(description="runs matching the filters, all pages together")
    next_cursor: str | None = Field(
        None, description="pass as cursor for the next page in the same sort; null on the last page"
    )


class FigureSpread(BaseModel):
    n: int = Field(description="runs of the group with this figure")
    mean: float | None
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
