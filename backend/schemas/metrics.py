"""Response bodies of the epoch and step rows: /api/v1/metrics, /api/v1/runs/ID/metrics and /steps."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EpochMetricPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    run_id: int = Field(description="the run's id")
    epoch: int = Field(description="the epoch, counted from 1")
    attempt: int = Field(description="the attempt that wrote the row")
    train_loss: float | None = Field(
        description="mean training loss of the epoch (the loss the run trains with: smoothed, mixed or distilled)"
    )
    train_top1: float | None = Field(description="training top-1 (%) of the epoch, on the augmented batches")
    train_top5: float | None = Field(description="training top-5 (%) of the epoch, on the augmented batches")
    valid_loss: float | None = Field(description="validation cross-entropy after the epoch")
    valid_top1: float | None = Field(description="validation top-1 (%) after the epoch")
    valid_top5: float | None = Field(description="validation top-5 (%) after the epoch")
    lr: float | None = Field(description="learning rate of the fastest layer group at the epoch's last step")
    seconds: float | None = Field(description="wall-clock seconds of the epoch's training pass")
    images_per_s: float | None = Field(description="training images per second of the epoch")
    train_task_loss: float | None = Field(
        None, description="with distillation: the task (label) part of train_loss; null without a teacher"
    )
    train_kd_loss: float | None = Field(
        None, description="with distillation: the teacher (KL) part of train_loss; null without a teacher"
    )
    data_wait_share: float | None = Field(
        None,
        description="share of the training pass spent waiting for the next batch (0-1); null before it was measured",
    )
    peak_memory_bytes: int | None = Field(None, description="peak device memory allocated in the epoch; null on a CPU")
    gpu_utilization: float | None = Field(
        None, description="the GPU's mean utilization over the epoch (%, NVML); null on a CPU or without NVML"
    )
    peak_rss_bytes: int | None = Field(
        None,
        description="the trainer process's peak host memory (resident) by the epoch's end; null before it was measured",
    )


class MetricsPublic(BaseModel):
    data: list[EpochMetricPublic]
    count: int = Field(description="rows in data")


class StepMetricPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    run_id: int = Field(description="the run's id")
    step: int = Field(description="optimizer steps done since the run began")
    epoch: int = Field(description="the epoch the step belongs to, counted from 1")
    loss: float | None = Field(
        description="the training loss of the step's batch; null when it was not a finite number"
    )
    lr: float | None = Field(description="learning rate of the fastest layer group at the step")


class StepsPublic(BaseModel):
    data: list[StepMetricPublic]
    count: int = Field(description="rows in data")


class RunColumnsPublic(BaseModel):
    """One run's epoch rows, field by field: ``epoch`` and each requested field, arrays of equal length."""

    model_config = ConfigDict(extra="allow")

    run_id: int = Field(description="the run's id")
    epoch: list[int]


class MetricColumnsPublic(BaseModel):
    fields: list[str] = Field(description="the arrays each run carries: `epoch`, then the requested fields")
    data: list[RunColumnsPublic]
    count: int = Field(description="runs in data")
    missing: list[int] = Field(description="ids asked for that name no run")
