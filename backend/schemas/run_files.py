"""Response bodies of /api/v1/runs/{id}/files."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

FileKind = Literal["config", "metrics", "result", "checkpoint", "tensorboard", "log", "other"]


class RunFilePublic(BaseModel):
    path: str = Field(description="relative to the run's folder, '/'-separated: GET .../files/{path} downloads it")
    size: int = Field(description="bytes")
    modified_at: datetime
    kind: FileKind = Field(
        description="config (config.json, sweep.json, ATTEMPT), metrics (metrics.jsonl), result (result.json), "
        "checkpoint (checkpoints/), tensorboard (tb/), log (logs/), other"
    )


class RunFilesPublic(BaseModel):
    data: list[RunFilePublic] = Field(description="the regular files of the run's folder by path; symlinks left out")
    count: int = Field(description="files in the list")
    total_bytes: int = Field(description="the sizes added up: the run's size on disk")
