"""/api/v1/lr-range-tests: queue an LR range test of a config, read its curve and its suggestion.

A range test is also a run (kind lr_range): /api/v1/runs/{id} cancels, retries and deletes it.
"""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import CreatorDep, RunId, SessionDep, SettingsDep
from backend.api.responses import BODY, READ_ONE
from backend.schemas.lr_range import LRRangeTestCreate, LRRangeTestCreated, LRRangeTestPublic
from backend.services import lr_range

router = APIRouter(prefix="/lr-range-tests", tags=["lr range tests"])


@router.post("", status_code=201, responses=BODY)
def create_lr_range_test(
    body: LRRangeTestCreate, session: SessionDep, settings: SettingsDep, creator: CreatorDep
) -> LRRangeTestCreated:
    run = lr_range.create_range_test(
        session=session,
        settings=settings,
        config=body.config,
        sweep=body.sweep,
        priority=body.priority,
        created_by=creator,
    )
    return LRRangeTestCreated(id=run.id, status=run.status)


@router.get("/{run_id}", responses=READ_ONE)
def get_lr_range_test(run_id: RunId, session: SessionDep) -> LRRangeTestPublic:
    return lr_range.get_range_test(session=session, run_id=run_id)
