"""/api/v1/sweeps bodies: the request is ``SweepCreate`` (``backend.schemas.sweep_spec``); these are the answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from backend.models import RunStatus, SweepStatus, TrialState
from backend.schemas.sweep_spec import SweepSpec


class TrialRun(BaseModel):
    run_id: int = Field(description="the run's id")
    seed: int = Field(description="its paired seed")
    confirm: bool = Field(description="a run of the confirmation stage")
    status: RunStatus
    value: float | None = Field(description="the run's objective once it has finished")


class TrialPublic(BaseModel):
    number: int = Field(description="the trial's number in the sweep, from 0")
    state: TrialState
    params: dict[str, Any] = Field(description="the values Optuna suggested, by dotted RunConfig key")
    value: float | None = Field(description="the objective: the mean over its search seeds (pruned: the last reported)")
    warm: bool = Field(description="brought in from finished runs, not queued by the sweep")
    retry_of: int | None = Field(description="the failed trial whose parameters it runs again")
    reported_epoch: int = Field(description="the last epoch told to the pruner")
    pruned: str | None = Field(description="at which rung, against which figures, where it was pruned")
    created_at: datetime
    finished_at: datetime | None
    runs: list[TrialRun]


class SweepPublic(BaseModel):
    id: int = Field(description="the sweep's id")
    name: str
    status: SweepStatus
    spec: SweepSpec
    created_by: str | None
    created_at: datetime
    finished_at: datetime | None
    paused_seconds: float = Field(
        description="time spent paused (the current pause too), which the wall-clock limit does not count"
    )
    trials: list[TrialPublic]
    counts: dict[str, int] = Field(description="trials per state")
    budget: int = Field(description="trials the search will queue (a grid's cells, if fewer)")
    best: int | None = Field(description="the number of the best complete trial so far")
    conclusion: dict[str, Any] | None = Field(
        description="the verdict: winner (a trial's number, or null), text, and the confirmation table's rows"
    )


class SweepsPublic(BaseModel):
    data: list[SweepPublic]
    count: int = Field(description="sweeps over all pages")


class SweepFigures(BaseModel):
    """Plotly figures as JSON: the page draws them as they are."""

    history: dict[str, Any] = Field(description="the objective per trial with the best so far; pruned trials marked")
    parallel: dict[str, Any] | None
    slice: dict[str, Any] | None
    importance: dict[str, Any] | None = Field(description="PED-ANOVA importance; null below enough trials")
    notes: dict[str, str] = Field(description="why a figure is missing")


class SweepPreset(BaseModel):
    key: str
    title: str
    body: dict[str, Any] = Field(description="a POST /sweeps body less its name and base")
    note: str | None = None
