"""/api/v1/studies: launch a preset or a grid of runs over seeds; its progress, table and curves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from backend.api.deps import (
    CreatorDep,
    IdempotencyKeyDep,
    Limit,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    Skip,
    StudyId,
)
from backend.api.responses import BODY, CHANGE, CSV, READ, READ_ONE, CsvResponse, errors
from backend.reports import study as study_report
from backend.schemas.studies import (
    Metric,
    StudiesPublic,
    StudyCreate,
    StudyCurves,
    StudyPreview,
    StudyPublic,
    StudyTable,
    StudyUpdate,
)
from backend.services import epoch_csv, studies, study_views

router = APIRouter(prefix="/studies", tags=["studies"])

MetricQuery = Annotated[
    Metric,
    Query(
        description="valid: the peak valid accuracy, at the epoch with the highest valid top-1 (the report's "
        "figure); test: test accuracy of the kept checkpoint (lowest valid loss)"
    ),
]


@router.post("", status_code=201, responses={**BODY, **errors(409)})
def create_study(
    body: StudyCreate,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyDep,
    creator: CreatorDep,
) -> StudyPublic:
    """Queue a study's runs. With an Idempotency-Key, a retry of the same request returns the study the
    first one created instead of a second one."""
    study = studies.create_study_once(
        session=session, settings=settings, idempotency_key=idempotency_key, request=body, created_by=creator
    )
    return study_views.study_public(session=session, study=study)


@router.post("/preview", responses=BODY)
def preview_study(body: StudyCreate, session: ReadSessionDep, settings: SettingsDep) -> StudyPreview:
    """What POST /studies would queue and about how long it would take on the living workers;
    the same 422s, nothing written."""
    return studies.preview_study(session=session, settings=settings, request=body)


@router.api_route("/preview", methods=["GET", "PATCH", "DELETE"], include_in_schema=False)
def preview_is_a_post() -> None:
    # Without it, GET (PATCH, DELETE) /studies/preview would reach /studies/{study_id}: a 422 for the id.
    raise HTTPException(405, "a preview takes the study in a POST body")


@router.get("", responses=READ)
def list_studies(session: SessionDep, skip: Skip = 0, limit: Limit = 100) -> StudiesPublic:
    found, count = studies.list_studies(session=session, skip=skip, limit=limit)
    return StudiesPublic(data=study_views.studies_public(session=session, studies=found), count=count)


@router.get("/{study_id}", responses=READ_ONE)
def get_study(study_id: StudyId, session: SessionDep) -> StudyPublic:
    return study_views.study_public(session=session, study=studies.get_study(session=session, study_id=study_id))


@router.get("/{study_id}/table", responses=READ_ONE)
def study_table(study_id: StudyId, session: SessionDep, metric: MetricQuery = "valid") -> StudyTable:
    study = studies.get_study(session=session, study_id=study_id)
    return study_views.study_table(session=session, study=study, metric=metric)


@router.get("/{study_id}/table.csv", response_class=CsvResponse, responses=CSV)
def study_table_csv(study_id: StudyId, session: SessionDep, metric: MetricQuery = "valid") -> CsvResponse:
    study = studies.get_study(session=session, study_id=study_id)
    table = study_views.study_table(session=session, study=study, metric=metric)
    return CsvResponse(
        study_report.table_csv(table),
        headers={"Content-Disposition": f'attachment; filename="study-{study_id}-{metric}.csv"'},
    )


@router.get("/{study_id}/epochs.csv", response_class=CsvResponse, responses=CSV)
def study_epochs_csv(study_id: StudyId, session: SessionDep) -> CsvResponse:
    """Every epoch row of the study's runs in long format (one line per run and epoch, each figure a column)."""
    return CsvResponse(
        epoch_csv.study_epochs_csv(session=session, study_id=study_id),
        headers={"Content-Disposition": f'attachment; filename="study-{study_id}-epochs.csv"'},
    )


@router.get("/{study_id}/curves", responses=READ_ONE)
def study_curves(study_id: StudyId, session: SessionDep) -> StudyCurves:
    return study_views.study_curves(session=session, study=studies.get_study(session=session, study_id=study_id))


@router.post("/{study_id}/cancel", responses=CHANGE)
def cancel_study(study_id: StudyId, session: SessionDep) -> StudyPublic:
    """Cancel the study's queued runs and stop its running ones; finished and reused runs stay."""
    study = studies.cancel_study(session=session, study_id=study_id)
    return study_views.study_public(session=session, study=study)


@router.patch("/{study_id}", responses={**BODY, **errors(404)})
def update_study(study_id: StudyId, body: StudyUpdate, session: SessionDep, creator: CreatorDep) -> StudyPublic:
    """Rename a study; updated_by and updated_at say who did and when."""
    study = studies.rename_study(session=session, study_id=study_id, name=body.name, updated_by=creator)
    return study_views.study_public(session=session, study=study)


@router.delete("/{study_id}", status_code=204, responses=CHANGE)
def delete_study(
    study_id: StudyId,
    session: SessionDep,
    settings: SettingsDep,
    keep_runs: Annotated[
        bool, Query(description="keep the study's runs (in no study) instead of deleting them with it")
    ] = False,
) -> Response:
    """Delete a study with the runs it created, their metrics and files (a 409 while one of them is
    running: cancel the study first); runs it reused from other studies stay. With keep_runs=true
    only the study goes."""
    studies.delete_study(session=session, settings=settings, study_id=study_id, keep_runs=keep_runs)
    return Response(status_code=204)
