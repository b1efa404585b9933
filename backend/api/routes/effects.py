"""/api/v1/studies/{id}/effects: which tricks of a grid study add up, and which interact."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.deps import SessionDep, StudyId
from backend.api.responses import READ_ONE
from backend.schemas.effects import ESTIMATE_HELP, StudyEffects
from backend.schemas.studies import Metric
from backend.services import effects

router = APIRouter(prefix="/studies", tags=["studies"])

DESCRIPTION = (
    "A full 2^k grid's main effects and two-way interactions on top-1 (OLS, effect coding −1/+1), each with its "
    f"95 % interval, p-value and Holm-corrected p-value. Each estimate is {ESTIMATE_HELP}. A grid with missing "
    "cells, a switch of more than two levels or one seed says what cannot be estimated, and why, in not_estimable."
)
MetricQuery = Annotated[
    Metric,
    Query(
        description="valid: the peak valid top-1 (the report's figure); "
        "test: test top-1 of the kept checkpoint (lowest valid loss)"
    ),
]


@router.get("/{study_id}/effects", description=DESCRIPTION, responses=READ_ONE)
def study_effects(
    study_id: StudyId,
    session: SessionDep,
    metric: MetricQuery = "valid",
) -> StudyEffects:
    return effects.study_effects(session=session, study_id=study_id, metric=metric)
