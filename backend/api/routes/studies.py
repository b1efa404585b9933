"""/api/v1/studies: launch a preset or a grid of runs over seeds; its progress, table and curves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse

from backend.api.deps import MAX_ID, CreatorDep, SessionDep, SettingsDep
from backend.reports import study as study_report
from backend.schemas.studies import (
    Metric,
    StudiesPublic,
    StudyCreate,
    StudyCurves,
    StudyPreview,
    StudyPublic,
    StudyTable,
)
from backend.services import studies

router = APIRouter(prefix="/studies", tags=["studies"])

StudyId = Annotated[int, Path(ge=1, le=MAX_ID, description="study id")]
MetricQuery = Annotated[
    Metric,
    Query(
        description="valid: best validation accuracy over epochs (the report's "
        "figure); test: test accuracy of the best-validation-loss checkpoint"
    ),
]


@router.post("", status_code=201)
def create_study(body: StudyCreate, session: SessionDep, settings: SettingsDep, creator: CreatorDep) -> StudyPublic:
    study = studies.create_study(
        session=session,
        settings=settings,
        name=body.name,
        preset=body.preset,
        switches=body.grid.switches if body.grid else None,
        overrides=body.overrides,
        seeds=body.seeds,
        priority=body.priority,
        created_by=creator,
    )
    return studies.study_public(session=session, study=study)


@router.post("/preview")
def preview_study(body: StudyCreate, session: SessionDep, settings: SettingsDep) -> StudyPreview:
    """What POST /studies would queue and about how long it would take on the living workers;
    the same 422s, nothing written."""
    return studies.preview_study(
        session=session,
        settings=settings,
        name=body.name,
        preset=body.preset,
        switches=body.grid.switches if body.grid else None,
        overrides=body.overrides,
        seeds=body.seeds,
    )


@router.get("")
def list_studies(
    session: SessionDep,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> StudiesPublic:
    found, count = studies.list_studies(session=session, skip=skip, limit=limit)
    return StudiesPublic(data=studies.studies_public(session=session, studies=found), count=count)


@router.get("/{study_id}")
def get_study(study_id: StudyId, session: SessionDep) -> StudyPublic:
    return studies.study_public(session=session, study=studies.get_study(session=session, study_id=study_id))


@router.get("/{study_id}/table")
def study_table(study_id: StudyId, session: SessionDep, metric: MetricQuery = "valid") -> StudyTable:
    study = studies.get_study(session=session, study_id=study_id)
    return studies.study_table(session=session, study=study, metric=metric)


@router.get("/{study_id}/table.csv", response_class=PlainTextResponse)
def study_table_csv(study_id: StudyId, session: SessionDep, metric: MetricQuery = "valid") -> PlainTextResponse:
    study = studies.get_study(session=session, study_id=study_id)
    table = studies.study_table(session=session, study=study, metric=metric)
    return PlainTextResponse(
        study_report.table_csv(table),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="study-{study_id}-{metric}.csv"'},
    )


@router.get("/{study_id}/curves")
def study_curves(study_id: StudyId, session: SessionDep) -> StudyCurves:
    return studies.study_curves(session=session, study=studies.get_study(session=session, study_id=study_id))


@router.post("/{study_id}/cancel")
def cancel_study(study_id: StudyId, session: SessionDep) -> StudyPublic:
    """Cancel the study's queued runs and stop its running ones; finished and reused runs stay."""
    study = studies.cancel_study(session=session, study_id=study_id)
    return studies.study_public(session=session, study=study)
