from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from sse_starlette import EventSourceResponse

from backend.api.deps import (
    CreatorDep,
    DatabaseDep,
    IdempotencyKeyDep,
    Limit,
    RunId,
    RunsWhere,
    SessionDep,
    SettingsDep,
    Skip,
    SortQuery,
)
from backend.api.responses import BODY, CHANGE, EVENT_STREAM, READ, READ_ONE, errors, json_errors
from backend.models import MAX_ID
from backend.schemas.metrics import MetricsPublic, StepMetricPublic, StepsPublic
from backend.schemas.runs import RunClone, RunCreate, RunPublic, RunsPublic, RunsUpdate, RunUpdate
from backend.services import events, organise, run_listing, runs
from backend.services import metrics as metric_service

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post("", status_code=201, responses={**BODY, **errors(409)})
def create_run(
    body: RunCreate,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyDep,
    creator: CreatorDep,
) -> RunPublic:
    """Queue a run. With an Idempotency-Key, a retry of the same request returns the run the first one
    queued (201 again) instead of a second run; the key with another body is a 422."""
    run = runs.create_run_once(
        session=session,
        settings=settings,
        config=body.config,
        priority=body.priority,
        idempotency_key=idempotency_key,
        created_by=creator,
    )
    return runs.public_run(session=session, settings=settings, run=run)


@router.get("", responses=READ)
def list_runs(
    session: SessionDep,
    settings: SettingsDep,
    where: RunsWhere,
    sort: SortQuery = "-id",
    cursor: Annotated[
        str | None, Query(max_length=500, description="next_cursor of the previous page: the page after it")
    ] = None,
    skip: Skip = 0,
    limit: Limit = 100,
) -> RunsPublic:
    """Runs that match every filter given, in ``sort``'s order, a page at a time: pass ``next_cursor`` as
    ``cursor`` for the next one."""
    found, count, next_cursor = run_listing.list_runs(
        session=session, where=where, sort=sort, cursor=cursor, skip=skip, limit=limit
    )
    data = runs.public_runs(session=session, settings=settings, runs=found)
    return RunsPublic(data=data, count=count, next_cursor=next_cursor)


@router.get("/{run_id}", responses=READ_ONE)
def get_run(run_id: RunId, session: SessionDep, settings: SettingsDep) -> RunPublic:
    return runs.public_run(session=session, settings=settings, run=runs.get_run(session=session, run_id=run_id))


@router.get("/{run_id}/metrics", response_model=MetricsPublic, responses=READ_ONE)
def run_metrics(
    run_id: RunId,
    session: SessionDep,
    since: Annotated[int, Query(ge=0, le=MAX_ID, description="only epochs after this one")] = 0,
) -> Response:
    body = metric_service.epoch_rows(session=session, run_ids=[run_id], since=since)
    return Response(body, media_type="application/json")


@router.get("/{run_id}/steps", responses=READ_ONE)
def run_steps(run_id: RunId, session: SessionDep) -> StepsPublic:
    rows = runs.step_metrics(session=session, run_id=run_id)
    return StepsPublic(data=[StepMetricPublic.model_validate(row) for row in rows], count=len(rows))


@router.get(
    "/{run_id}/events",
    response_class=EventSourceResponse,
    responses={200: EVENT_STREAM, **json_errors(404, 422, 503)},
)
def run_events(
    run_id: RunId,
    database: DatabaseDep,
    settings: SettingsDep,
    last_event_id: Annotated[int, Header(ge=0, le=MAX_ID, description="resume after this epoch")] = 0,
) -> EventSourceResponse:
    stream = events.open_stream(database=database, settings=settings, run_id=run_id, after_epoch=last_event_id)
    return EventSourceResponse(
        stream,
        ping=settings.sse_keepalive_seconds,
        ping_message_factory=events.keep_alive,
        headers={"Cache-Control": "no-cache"},
    )


@router.patch("", responses={**CHANGE, **BODY})
def update_runs(body: RunsUpdate, session: SessionDep, settings: SettingsDep, creator: CreatorDep) -> RunsPublic:
    """Make the same change to several runs (rename, notes, tags, archive, priority): all of them, or
    none with a 404 or 409 that names the run in the way."""
    changed = organise.update_runs(session=session, run_ids=body.run_ids, changes=body, updated_by=creator)
    return RunsPublic(data=runs.public_runs(session=session, settings=settings, runs=changed), count=len(changed))


@router.patch("/{run_id}", responses={**CHANGE, **BODY})
def update_run(
    run_id: RunId, body: RunUpdate, session: SessionDep, settings: SettingsDep, creator: CreatorDep
) -> RunPublic:
    """Rename a run, set its notes, add or remove tags, archive or restore it, or change a queued run's
    priority (the next claim follows the new order; a run no longer queued is a 409). Each change but
    the priority records who made it and when (updated_by, updated_at)."""
    run = organise.update_run(session=session, run_id=run_id, changes=body, updated_by=creator)
    return runs.public_run(session=session, settings=settings, run=run)


@router.post("/{run_id}/cancel", responses=CHANGE)
def cancel_run(run_id: RunId, session: SessionDep, settings: SettingsDep) -> RunPublic:
    run = runs.cancel_run(session=session, run_id=run_id)
    return runs.public_run(session=session, settings=settings, run=run)


@router.post("/{run_id}/retry", responses=CHANGE)
def retry_run(run_id: RunId, session: SessionDep, settings: SettingsDep) -> RunPublic:
    run = runs.retry_run(session=session, run_id=run_id)
    return runs.public_run(session=session, settings=settings, run=run)


@router.post("/{run_id}/clone", status_code=201, responses={**BODY, **errors(404)})
def clone_run(
    run_id: RunId, body: RunClone, session: SessionDep, settings: SettingsDep, creator: CreatorDep
) -> RunPublic:
    run = runs.clone_run(
        session=session,
        settings=settings,
        run_id=run_id,
        overrides=body.overrides,
        name=body.name,
        priority=body.priority,
        created_by=creator,
    )
    return runs.public_run(session=session, settings=settings, run=run)


@router.delete("/{run_id}", status_code=204, responses=CHANGE)
def delete_run(run_id: RunId, session: SessionDep, settings: SettingsDep) -> Response:
    runs.delete_run(session=session, settings=settings, run_id=run_id)
    return Response(status_code=204)
