"""GET /api/v1/epochs.csv: the epoch rows of the runs the runs list's filters match, as CSV in long format.

(A study's and a comparison's are /studies/{id}/epochs.csv and /compare/epochs.csv.)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.deps import ArchivedQuery, FilterQuery, SessionDep
from backend.api.responses import CSV, CsvResponse
from backend.models import MAX_ID, RunKind, RunStatus
from backend.services import epoch_csv, run_listing

router = APIRouter(tags=["metrics"])


@router.get("/epochs.csv", response_class=CsvResponse, responses=CSV)
def list_runs_epochs_csv(
    session: SessionDep,
    filter: FilterQuery = None,
    status: Annotated[list[RunStatus] | None, Query(description="repeat for several")] = None,
    kind: Annotated[list[RunKind] | None, Query(description="training or lr_range; repeat for both")] = None,
    name: Annotated[str | None, Query(max_length=200, description="part of the name, any case")] = None,
    study_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    created_by: Annotated[str | None, Query(max_length=64, description="name of the token that queued it")] = None,
    archived: ArchivedQuery = "false",
) -> CsvResponse:
    """Every epoch row of the runs GET /runs's filter and parameters match (the newest 10,000), in long format: run_id,
    run_name, study_id, config_hash, epoch, attempt and each figure, one line per run and epoch."""
    where = run_listing.Where(
        filter_text=filter,
        statuses=status or (),
        kinds=kind or (),
        name=name,
        study_id=study_id,
        created_by=created_by,
        archived=run_listing.ARCHIVED[archived],
    )
    body = epoch_csv.listed_epochs_csv(session=session, where=where)
    return CsvResponse(body, headers={"Content-Disposition": 'attachment; filename="runs-epochs.csv"'})
