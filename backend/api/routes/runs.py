from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from sse_starlette import EventSourceResponse

from backend.api.deps import CreatorDep, DatabaseDep, RunId, SessionDep, SettingsDep
from backend.models import RunKind, RunStatus
from backend.schemas.metrics import EpochMetricPublic, MetricsPublic, StepMetricPublic, StepsPublic
from backend.schemas.runs import RunClone, RunCreate, RunPublic, RunsPublic
from backend.services import events, runs

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post("", status_code=201)
def create_run(body: RunCreate, session: SessionDep, settings: SettingsDep, creator: CreatorDep) -> RunPublic:
    run = runs.create_run(
        session=session, settings=settings, config=body.config, priority=body.priority, created_by=creator
    )
    return runs.public_run(session=session, settings=settings, run=run)


@router.get("")
def list_runs(
    session: SessionDep,
    settings: SettingsDep,
    status: Annotated[list[RunStatus] | None, Query(description="repeat for several")] = None,
    kind: Annotated[list[RunKind] | None, Query(description="training or lr_range; repeat for both")] = None,
    name: Annotated[str | None, Query(max_length=200, description="part of the name, any case")] = None,
    study_id: Annotated[int | None, Query(ge=1)] = None,
    created_by: Annotated[str | None, Query(max_length=64, description="name of the token that queued it")] = None,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RunsPublic:
    found, count = runs.list_runs(
        session=session,
        statuses=status or (),
        kinds=kind or (),
        name=name,
        study_id=study_id,
        created_by=created_by,
        skip=skip,
        limit=limit,
    )
    return RunsPublic(data=runs.public_runs(session=session, settings=settings, runs=found), count=count)


@router.get("/{run_id}")
def get_run(run_id: RunId, session: SessionDep, settings: SettingsDep) -> RunPublic:
    return runs.public_run(session=session, settings=settings, run=runs.get_run(session=session, run_id=run_id))


@router.get("/{run_id}/metrics")
def run_metrics(
    run_id: RunId,
    session: SessionDep,
    since: Annotated[int, Query(ge=0, description="only epochs after this one")] = 0,
) -> MetricsPublic:
    rows = runs.epoch_metrics(session=session, run_id=run_id, since=since)
    return MetricsPublic(data=[EpochMetricPublic.model_validate(row) for row in rows], count=len(rows))


@router.get("/{run_id}/steps")
def run_steps(run_id: RunId, session: SessionDep) -> StepsPublic:
    rows = runs.step_metrics(session=session, run_id=run_id)
    return StepsPublic(data=[StepMetricPublic.model_validate(row) for row in rows], count=len(rows))


@router.get(
    "/{run_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`epoch` per new epoch row (id = epoch), `status` per status change, "
            "`end` when the run is final",
        }
    },
)
def run_events(
    run_id: RunId,
    database: DatabaseDep,
    settings: SettingsDep,
    last_event_id: Annotated[int | None, Header(ge=0, description="resume after this epoch")] = None,
) -> EventSourceResponse:
    stream = events.open_stream(database=database, settings=settings, run_id=run_id, after_epoch=last_event_id or 0)
    return EventSourceResponse(
        stream,
        ping=settings.sse_keepalive_seconds,
        ping_message_factory=events.keep_alive,
        headers={"Cache-Control": "no-cache"},
    )


@router.post("/{run_id}/cancel")
def cancel_run(run_id: RunId, session: SessionDep, settings: SettingsDep) -> RunPublic:
    run = runs.cancel_run(session=session, run_id=run_id)
    return runs.public_run(session=session, settings=settings, run=run)


@router.post("/{run_id}/retry")
def retry_run(run_id: RunId, session: SessionDep, settings: SettingsDep) -> RunPublic:
    run = runs.retry_run(session=session, run_id=run_id)
    return runs.public_run(session=session, settings=settings, run=run)


@router.post("/{run_id}/clone", status_code=201)
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


@router.delete("/{run_id}", status_code=204)
def delete_run(run_id: RunId, session: SessionDep, settings: SettingsDep) -> Response:
    runs.delete_run(session=session, settings=settings, run_id=run_id)
    return Response(status_code=204)
