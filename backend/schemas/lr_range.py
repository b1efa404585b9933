"""Request and response bodies of /api/v1/lr-range-tests."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from backend.models import RunStatus
from backend.schemas.config import DocumentedAs, RunConfigBody
from backend.schemas.runs import Priority
from trainer.lr_finder.sweep import LRSweep


class LRRangeTestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: RunConfigBody = Field(
        default_factory=dict,
        description="the RunConfig to test (partial: defaults fill the rest); its optim.lr is what the sweep varies",
        examples=[{"model": {"arch": "resnet18", "pretrained": False}, "data": {"root": "data", "image_size": 64}}],
    )
    sweep: Annotated[dict[str, Any], DocumentedAs(LRSweep)] = Field(
        default_factory=dict,
        description="start_lr, end_lr, steps, mode (exponential | linear), smoothing, stop_factor; keys left out "
        "take the report's range test: 1e-7 to 10 over 100 steps, exponential, smoothed at 0.05, stop past 5x the "
        "lowest smoothed loss",
        examples=[{"steps": 100}],
    )
    priority: Priority = Field(0, description="higher runs first; ties run oldest first")


class LRRangeTestCreated(BaseModel):
    id: int = Field(
        description="the range test's run id: GET /api/v1/lr-range-tests/{id}, its page /lr-range-tests/{id}"
    )
    status: RunStatus


class CurvePointPublic(BaseModel):
    step: int = Field(description="optimizer steps done, counted from 1")
    lr: float = Field(description="the sweep's rate at this step: optim.lr, every group at its share of it")
    loss: float | None = Field(description="the batch's training loss; null when it was not a finite number")
    smoothed: float | None = Field(description="the moving average the stop rule and the suggestion read")


class StopPublic(BaseModel):
    step: int = Field(description="the step at which the stop rule fired")
    reason: str


class LRRangeTestPublic(BaseModel):
    id: int = Field(description="the range test's run id")
    name: str
    status: RunStatus
    error: str | None = Field(description="why the latest attempt failed")
    cancel_requested: bool
    created_at: datetime
    finished_at: datetime | None
    config: dict[str, Any]
    sweep: dict[str, Any] = Field(description="the whole sweep, defaults filled in")
    curve: list[CurvePointPublic] = Field(description="every step so far, cut where the stop rule fired")
    minimum: CurvePointPublic | None = Field(description="the lowest smoothed loss")
    minimum_tenth: float | None = Field(description="a tenth of the minimum's rate: the other usual pick")
    steepest: CurvePointPublic | None = Field(description="the steepest fall of the smoothed loss before its minimum")
    suggestion: float | None = Field(
        description="the rate to put into optim.lr: the steepest descent's; null until the test has succeeded"
    )
    stopped: StopPublic | None = Field(description="where the stop rule ended the sweep; null if it reached end_lr")
    findings: list[str] = Field(description="what the curve says, one sentence each (as tricklab lr-find prints)")
