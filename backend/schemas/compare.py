"""Response body of /api/v1/compare: the summary table's rows as the report derives them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from backend.reports.compare import CompareRow, Mode


class ComparePublic(BaseModel):
    data: list[CompareRow] = Field(description="one row per existing run, in the order of run_ids")
    count: int = Field(description="rows in data")
    mode: Mode
    baseline: int = Field(description="the run the deltas are taken against")
    missing: list[int] = Field(description="ids asked for that name no run")
