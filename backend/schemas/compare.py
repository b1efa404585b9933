"""Response body of /api/v1/compare: the summary table's rows (``reports.compare`` derives them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

Mode = Literal["best", "final"]
MODES: tuple[Mode, ...] = ("best", "final")


@dataclass(frozen=True)
class CompareRow:
    run_id: int
    name: str
    status: str
    tricks: str
    configuration: str  # equal for the seeds of one configuration (``configuration_key``)
    seed: int
    is_baseline: bool
    epochs: int
    epoch: int | None  # the epoch the valid figures come from
    top1: float | None
    top5: float | None
    top1_delta: float | None
    top5_delta: float | None
    top1_text: str
    top5_text: str
    checkpoint_epoch: int | None  # the kept checkpoint's epoch, which the test figures come from
    test_top1: float | None
    test_top5: float | None
    lr_groups: str
    seconds_per_epoch: float | None
    images_per_s: float | None  # means over the stored epochs
    data_wait_share: float | None
    data_wait_hint: str | None  # why the run waits for its data, when it waits over a fifth of the time


class ComparePublic(BaseModel):
    data: list[CompareRow] = Field(description="one row per existing run, in the order of run_ids")
    count: int = Field(description="rows in data")
    mode: Mode
    baseline: int = Field(description="the run the deltas are taken against")
    missing: list[int] = Field(description="ids asked for that name no run")
