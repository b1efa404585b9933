"""GET /api/v1/compare(.csv): the report's summary table for a set of runs, deltas against a baseline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from backend.api.deps import ModeQuery, RunIdsDep, SessionDep, SettingsDep
from backend.reports.compare import rows_to_csv
from backend.services.compare import compare_runs

router = APIRouter(prefix="/compare", tags=["compare"])

BaselineQuery = Annotated[int | None, Query(ge=1, description="run the deltas are taken against; default: the first")]


@router.get("")
def compare(
    run_ids: RunIdsDep,
    session: SessionDep,
    settings: SettingsDep,
    baseline: BaselineQuery = None,
    mode: ModeQuery = "best",
) -> dict:
    rows = compare_runs(session=session, settings=settings, run_ids=run_ids, baseline=baseline, mode=mode)
    return {"data": rows, "count": len(rows), "mode": mode}


@router.get(".csv", response_class=PlainTextResponse)
def compare_csv(
    run_ids: RunIdsDep,
    session: SessionDep,
    settings: SettingsDep,
    baseline: BaselineQuery = None,
    mode: ModeQuery = "best",
) -> PlainTextResponse:
    rows = compare_runs(session=session, settings=settings, run_ids=run_ids, baseline=baseline, mode=mode)
    return PlainTextResponse(
        rows_to_csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="compare-{mode}.csv"'},
    )
