"""GET /api/v1/epochs.csv: the epoch rows of the runs the runs list's filters match, as CSV in long format.

(A study's and a comparison's are /studies/{id}/epochs.csv and /compare/epochs.csv.)
"""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import RunsWhere, SessionDep
from backend.api.responses import CSV, CsvResponse
from backend.services import epoch_csv

router = APIRouter(tags=["metrics"])


@router.get("/epochs.csv", response_class=CsvResponse, responses=CSV)
def list_runs_epochs_csv(session: SessionDep, where: RunsWhere) -> CsvResponse:
    """Every epoch row of the runs GET /runs's filter and parameters match (the newest 10,000), in long format: run_id,
    run_name, study_id, config_hash, epoch, attempt and each figure, one line per run and epoch."""
    body = epoch_csv.listed_epochs_csv(session=session, where=where)
    return CsvResponse(body, headers={"Content-Disposition": 'attachment; filename="runs-epochs.csv"'})
