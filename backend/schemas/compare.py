"""Response body of /api/v1/compare: the summary table's rows (``reports.compare`` derives them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

Mode = Literal["peak", "final"]
MODES: tuple[Mode, ...] = ("peak", "final")


@dataclass(frozen=True)
class CompareRow:
    run_id: Annotated[int, Field(description="the run's id")]
    name: str
    status: str
    tricks: str
    configuration: str  # equal for the seeds of one configuration (``configuration_key``)
    seed: Annotated[int, Field(description="the run's seed (RunConfig.seed)")]
    is_baseline: bool
    epochs: Annotated[int, Field(description="epochs the run is configured to train")]
    epoch: Annotated[
        int | None,
        Field(
            description="the epoch the valid figures come from: the peak (highest valid top-1) or the final "
            "epoch, by mode; null before any epoch"
        ),
    ]
    top1: Annotated[float | None, Field(description="valid top-1 (%) at epoch")]
    top5: Annotated[
        float | None, Field(description="valid top-5 (%) at epoch (the same epoch as top1, not the highest top-5)")
    ]
    top1_delta: Annotated[
        float | None,
        Field(
            description="top1 minus the baseline's top1, in percentage points, unrounded (top1_text writes it "
            "rounded once); null for the baseline"
        ),
    ]
    top5_delta: Annotated[
        float | None,
        Field(description="top5 minus the baseline's top5, in percentage points, unrounded; null for the baseline"),
    ]
    top1_text: str
    top5_text: str
    checkpoint_epoch: Annotated[
        int | None,
        Field(description="epoch of the kept checkpoint (lowest valid loss), which the test figures come from"),
    ]
    test_top1: Annotated[float | None, Field(description="test top-1 (%) of the kept checkpoint")]
    test_top5: Annotated[float | None, Field(description="test top-5 (%) of the kept checkpoint")]
    lr_groups: str
    seconds_per_epoch: Annotated[
        float | None, Field(description="mean training seconds per epoch over the stored epochs")
    ]
    images_per_s: Annotated[float | None, Field(description="mean training images per second over the stored epochs")]
    data_wait_share: Annotated[
        float | None, Field(description="mean share (0-1) of the training passes spent waiting for batches")
    ]
    data_wait_hint: str | None  # why the run waits for its data, when it waits over a fifth of the time


@dataclass(frozen=True)
class DiffColumn:
    configuration: str  # ``configuration_key``: equal for its seeds and repeats
    name: str  # its first run's name
    run_ids: list[int]


@dataclass(frozen=True)
class DiffRow:
    key: str  # a dotted RunConfig key, e.g. tricks.label_smoothing
    values: list[Any]  # one per column


@dataclass(frozen=True)
class ConfigDiff:
    columns: list[DiffColumn]
    rows: list[DiffRow]  # only the keys whose values differ between the columns


class ComparePublic(BaseModel):
    data: list[CompareRow] = Field(description="one row per existing run, in the order of run_ids")
    count: int = Field(description="rows in data")
    mode: Mode
    baseline: int = Field(description="the run the deltas are taken against")
    missing: list[int] = Field(description="ids asked for that name no run")
    config_diff: ConfigDiff = Field(
        description="the config keys whose values differ between the compared configurations (the seeds of one "
        "configuration collapsed into one column), side by side; the name, seed, device and loader workers left out"
    )
