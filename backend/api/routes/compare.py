"""GET /api/v1/compare(.csv): the report's summary table for a set of runs, deltas against a baseline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import PlainTextResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.api.deps import RunIdsDep, SessionDep, SettingsDep
from backend.models import Run
from backend.reports.compare import CompareRow, Mode, compare_rows, rows_to_csv
from backend.services import runs as run_service
from backend.settings import Settings

router = APIRouter(prefix="/compare", tags=["compare"])

BaselineQuery = Annotated[int | None, Query(ge=1, description="run the deltas are taken against; default: the first")]
ModeQuery = Annotated[
    Mode, Query(description="best: the epoch with the best valid top-1 (the report's figure); final: the last epoch")
]


def _rows(
    session: Session, settings: Settings, run_ids: list[int], baseline: int | None, mode: Mode
) -> list[CompareRow]:
    ids = list(dict.fromkeys(run_ids))
    if baseline is not None and baseline not in ids:
        raise HTTPException(422, f"baseline {baseline} is not one of the compared runs")
    metrics = run_service.metrics_of_runs(session=session, run_ids=ids)  # NotFound names any missing run
    found = {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(ids)))}
    public = run_service.public_runs(session=session, settings=settings, runs=[found[run_id] for run_id in ids])
    return compare_rows(public, metrics, baseline_id=ids[0] if baseline is None else baseline, mode=mode)


@router.get("")
def compare(
    run_ids: RunIdsDep,
    session: SessionDep,
    settings: SettingsDep,
    baseline: BaselineQuery = None,
    mode: ModeQuery = "best",
) -> dict:
    rows = _rows(session, settings, run_ids, baseline, mode)
    return {"data": rows, "count": len(rows), "mode": mode}


@router.get(".csv", response_class=PlainTextResponse)
def compare_csv(
    run_ids: RunIdsDep,
    session: SessionDep,
    settings: SettingsDep,
    baseline: BaselineQuery = None,
    mode: ModeQuery = "best",
) -> PlainTextResponse:
    rows = _rows(session, settings, run_ids, baseline, mode)
    return PlainTextResponse(
        rows_to_csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="compare-{mode}.csv"'},
    )
