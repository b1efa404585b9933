"""Typed answers of /api/v1/sweeps (``Client.create_sweep`` and its kin)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tricklab.models import Resource

SWEEP_ENDED = frozenset({"finished", "cancelled"})


class TrialRun(Resource):
    run_id: int
    seed: int
    confirm: bool
    status: str
    value: float | None = None


class Trial(Resource):
    number: int
    state: str  # running, complete, pruned, failed
    params: dict[str, Any]
    value: float | None = None
    warm: bool = False
    retry_of: int | None = None
    reported_epoch: int = 0
    pruned: str | None = None  # at which rung, against which figures
    runs: list[TrialRun]


class Sweep(Resource):
    id: int
    name: str
    status: str  # running, paused, confirming, finished, cancelled
    spec: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None = None
    paused_seconds: float = 0.0  # time spent paused, which budget.minutes does not count
    trials: list[Trial]
    counts: dict[str, int]
    budget: int
    best: int | None = None
    conclusion: dict[str, Any] | None = None  # winner (a trial's number or None), text, rows

    @property
    def ended(self) -> bool:
        return self.status in SWEEP_ENDED


class SweepPage(Resource):
    data: list[Sweep]
    count: int


class SweepPreset(Resource):
    key: str
    title: str
    body: dict[str, Any]
    note: str | None = None
