"""GET /api/v1/compare(.csv): the report's summary table for a set of runs, deltas against a baseline."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Response

from backend.api.deps import ModeQuery, RunIdsDep, SessionDep
from backend.api.responses import CSV, READ_ONE, CsvResponse
from backend.models import MAX_ID
from backend.reports.compare import rows_to_csv
from backend.schemas.compare import ComparePublic
from backend.services import epoch_csv
from backend.services.compare import Comparison, compare_runs

router = APIRouter(prefix="/compare", tags=["compare"])

BaselineQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_ID,
        description="run the deltas are taken against; default: the one with the fewest tricks, then the oldest",
    ),
]


def _comparison(
    run_ids: RunIdsDep,
    session: SessionDep,
    baseline: BaselineQuery = None,
    mode: ModeQuery = "peak",
) -> Comparison:
    """The query both forms of the table take, answered once."""
    return compare_runs(session=session, run_ids=run_ids, baseline=baseline, mode=mode)


ComparisonDep = Annotated[Comparison, Depends(_comparison)]


@router.get("", response_model=ComparePublic, responses=READ_ONE)
async def compare(comparison: ComparisonDep) -> Response:
    """The rows of the runs that exist; ``missing`` names the ids that name no run (404 if none exists)."""
    # The rows are the report's own dataclasses: serialized as they are, not validated again.
    body = {
        "data": comparison.rows,
        "count": len(comparison.rows),
        "mode": comparison.mode,
        "baseline": comparison.baseline,
        "missing": comparison.missing,
        "config_diff": comparison.config_diff,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(".csv", response_class=CsvResponse, responses=CSV)
async def compare_csv(comparison: ComparisonDep) -> CsvResponse:
    return CsvResponse(
        rows_to_csv(comparison.rows),
        headers={"Content-Disposition": f'attachment; filename="compare-{comparison.mode}.csv"'},
    )


@router.get("/epochs.csv", response_class=CsvResponse, responses=CSV)
def compare_epochs_csv(run_ids: RunIdsDep, session: SessionDep) -> CsvResponse:
    """Every epoch row of the compared runs in long format: run_id, run_name, study_id, config_hash, epoch,
    attempt and each figure; 404 naming the ids that name no run."""
    return CsvResponse(
        epoch_csv.epochs_csv(session=session, run_ids=run_ids),
        headers={"Content-Disposition": 'attachment; filename="compare-epochs.csv"'},
    )
