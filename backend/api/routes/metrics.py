from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from backend.api.deps import RunIdsDep, SessionDep
from backend.api.responses import READ_ONE
from backend.schemas.metrics import MetricColumnsPublic, MetricsPublic
from backend.services import metrics as metric_service

router = APIRouter(prefix="/metrics", tags=["metrics"])

FieldsQuery = Annotated[
    str | None,
    Query(
        max_length=1000,
        description="comma-separated epoch fields to return beside `epoch`, e.g. `train_loss,valid_top1`; "
        f"default: all of {', '.join(metric_service.FIELDS)}",
    ),
]


@router.get("", response_model=MetricsPublic, responses=READ_ONE)
def get_metrics(run_ids: RunIdsDep, session: SessionDep) -> Response:
    """All epoch rows of several runs, one object per row, ordered by run and epoch: the shape for
    scripts. 404 if any run does not exist. The pages read `/metrics/columns`."""
    return Response(metric_service.epoch_rows(session=session, run_ids=run_ids), media_type="application/json")


@router.get(
    "/columns",
    response_model=MetricColumnsPublic,
    responses={304: {"description": "the runs are finished and the rows are those of the ETag sent"}, **READ_ONE},
)
def metric_columns(
    run_ids: RunIdsDep,
    session: SessionDep,
    fields: FieldsQuery = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The epoch rows of several runs as columns: per run one array per field (what a chart takes),
    in the order of `run_ids`. Runs that do not exist are named in `missing` (404 only if none
    exists). A set of finished runs is answered with an ETag: send it back in `If-None-Match` to get
    a 304 without a body."""
    answer = metric_service.metric_columns(session=session, run_ids=run_ids, fields=fields, if_none_match=if_none_match)
    headers = {"Cache-Control": "no-cache"} | ({"ETag": answer.etag} if answer.etag else {})
    if answer.body is None:
        return Response(status_code=304, headers=headers)
    return Response(answer.body, media_type="application/json", headers=headers)
