"""Response bodies of /api/v1/workers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class DevicePublic(BaseModel):
    device: str = Field(description='what the worker trains on: "cpu", "cuda:0", ...')
    kind: Literal["cpu", "cuda"]
    name: str | None = Field(description='e.g. "NVIDIA H200", or "2 CPU cores"')
    memory_gib: float | None = Field(None, description="GPU memory")


class WorkerPublic(BaseModel):
    name: str = Field(description="host:pid, with the device it was started for")
    devices: list[DevicePublic]
    started_at: datetime
    last_seen_at: datetime
    alive: bool = Field(description="seen within the stale timeout (TRICKLAB_STALE_AFTER_SECONDS)")
    paused: str | None = Field(
        None, description="why the worker claims no run now, e.g. its runs folder lacks the space; null when it does"
    )


class WorkersPublic(BaseModel):
    data: list[WorkerPublic] = Field(description="workers seen in the last day, the living ones first")
    count: int = Field(description="workers in data")
    alive: int = Field(description="workers seen within the stale timeout")
    gpus: int = Field(description="CUDA devices of the living workers")
