"""GET /api/v1/run-groups: the runs list with the seeds of each configuration as one row.

A path of its own, not /runs/groups, which PATCH and DELETE /runs/{run_id} would take for a run id.
"""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import ArchivedQuery, FilterQuery, Limit, SessionDep, Skip, SortQuery
from backend.api.responses import READ
from backend.schemas.runs import RunGroupsPublic
from backend.services import run_listing

router = APIRouter(prefix="/run-groups", tags=["runs"])


@router.get("", responses=READ)
def list_run_groups(
    session: SessionDep,
    filter: FilterQuery = None,
    sort: SortQuery = "-id",
    archived: ArchivedQuery = "false",
    skip: Skip = 0,
    limit: Limit = 100,
) -> RunGroupsPublic:
    """The seeds of one configuration (the config without its seed) as one row, with the mean and standard
    deviation of each figure over them; ``sort`` orders the groups by the mean of a figure, their newest
    id or date, or their first name."""
    groups, count = run_listing.list_groups(
        session=session,
        where=run_listing.Where(filter_text=filter, archived=run_listing.ARCHIVED[archived]),
        sort=sort,
        skip=skip,
        limit=limit,
    )
    return RunGroupsPublic(data=[run_listing.public_group(group) for group in groups], count=count)
