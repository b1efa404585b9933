from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import RunIdsDep, SessionDep
from backend.api.responses import READ_ONE
from backend.schemas.metrics import EpochMetricPublic, MetricsPublic
from backend.services import runs

router = APIRouter(prefix="/metrics", tags=["metrics"])


@router.get("", responses=READ_ONE)
def metrics_of_runs(run_ids: RunIdsDep, session: SessionDep) -> MetricsPublic:
    """All epoch rows of several runs, ordered by run and epoch, for the comparison pages."""
    rows = runs.metrics_of_runs(session=session, run_ids=run_ids)
    return MetricsPublic(data=[EpochMetricPublic.model_validate(row) for row in rows], count=len(rows))
