"""Response bodies of the epoch and step rows: /api/v1/metrics, /api/v1/runs/ID/metrics and /steps."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EpochMetricPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    run_id: int
    epoch: int
    attempt: int = Field(description="the attempt that wrote the row")
    train_loss: float | None
    train_top1: float | None
    train_top5: float | None
    valid_loss: float | None
    valid_top1: float | None
    valid_top5: float | None
    lr: float | None
    seconds: float | None
    images_per_s: float | None
    train_task_loss: float | None = None
    train_kd_loss: float | None = None
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
    count: int


class StepMetricPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    run_id: int
    step: int
    epoch: int
    loss: float | None
    lr: float | None


class StepsPublic(BaseModel):
    data: list[StepMetricPublic]
    count: int


class RunColumnsPublic(BaseModel):
    """One run's epoch rows, field by field: ``epoch`` and each requested field, arrays of equal length."""

    model_config = ConfigDict(extra="allow")

    run_id: int
    epoch: list[int]


class MetricColumnsPublic(BaseModel):
    fields: list[str] = Field(description="the arrays each run carries: `epoch`, then the requested fields")
    data: list[RunColumnsPublic]
    count: int = Field(description="runs in data")
    missing: list[int] = Field(description="ids asked for that name no run")
