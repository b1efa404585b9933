"""A study, a compare selection or a sweep as a report: one offline HTML file, its table as Markdown or LaTeX,
and each figure as SVG or PNG (drawn by kaleido in Chromium, away from the database's read slots)."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Response

from backend.api.deps import DatabaseDep, ModeQuery, RunIdsDep, SessionDep, SettingsDep, StudyId, SweepId, read_apart
from backend.api.responses import json_errors
from backend.api.routes.compare import BaselineQuery
from backend.api.routes.studies import MetricQuery
from backend.reports import document
from backend.reports.document import Report
from backend.reports.figures import FigureName as Figure
from backend.schemas.compare import Mode
from backend.services import figure_images
from backend.services import reports as report_service
from backend.services import sweep_report as sweep_report_service

router = APIRouter(tags=["reports"])

TextFormat = Literal["html", "md", "tex"]
FigureName = Annotated[Figure, Path(description="train_loss, valid_top1, valid_top5, lr, or effects (a grid study's)")]
SweepFigureName = Annotated[sweep_report_service.FigureName, Path(description="history, parallel, slice or importance")]
ImageFormat = Annotated[figure_images.ImageFormat, Path(description="svg or png")]
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "tex": "text/x-tex; charset=utf-8",
}
DOCUMENT = {
    200: {"content": {media.split(";")[0]: {"schema": {"type": "string"}} for media in MEDIA_TYPES.values()}},
    **json_errors(404, 422, 503),
}
BINARY = {"schema": {"type": "string", "format": "binary"}}
IMAGE = {
    200: {"content": dict.fromkeys(figure_images.MEDIA_TYPES.values(), BINARY)},
    **json_errors(404, 422, 503),
}


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _written(report: Report, kind: TextFormat) -> Response:
    """The report as ``kind``: the whole HTML file, or its tables alone."""
    write = {"html": document.render_html, "md": document.render_markdown, "tex": document.render_latex}[kind]
    body = write(report)
    return Response(body, media_type=MEDIA_TYPES[kind], headers=_attachment(f"{report.stem}.{kind}"))


async def _image(report: Report, name: str, image_format: figure_images.ImageFormat) -> Response:
    figure = report_service.report_figure(report, name)
    image = await anyio.to_thread.run_sync(figure_images.render, figure, image_format)
    return Response(
        image,
        media_type=figure_images.MEDIA_TYPES[image_format],
        headers=_attachment(f"{report.stem}-{name}.{image_format}"),
    )


@router.get("/studies/{study_id}/report.{kind}", response_class=Response, responses=DOCUMENT)
def study_report(study_id: StudyId, kind: TextFormat, session: SessionDep, metric: MetricQuery = "valid") -> Response:
    """The study as one HTML file that opens offline (html), or its results table as Markdown (md) or
    LaTeX booktabs (tex)."""
    return _written(report_service.study_report(session=session, study_id=study_id, metric=metric), kind)


@router.get("/studies/{study_id}/figures/{name}.{image_format}", response_class=Response, responses=IMAGE)
async def study_figure(
    study_id: StudyId, name: FigureName, image_format: ImageFormat, database: DatabaseDep, metric: MetricQuery = "valid"
) -> Response:
    """One of the study's figures as SVG or PNG; 503 when no Chromium can draw it."""
    report = await read_apart(
        database, lambda session: report_service.study_report(session=session, study_id=study_id, metric=metric)
    )
    return await _image(report, name, image_format)


async def _compare_query(
    run_ids: RunIdsDep, baseline: BaselineQuery = None, mode: ModeQuery = "peak"
) -> tuple[list[int], int | None, Mode]:
    """The compare table's own query parameters: ``run_ids``, ``baseline``, ``mode``."""
    return run_ids, baseline, mode


CompareQuery = Annotated[tuple[list[int], int | None, Mode], Depends(_compare_query)]


@router.get("/compare/report.{kind}", response_class=Response, responses=DOCUMENT)
def compare_report(kind: TextFormat, query: CompareQuery, session: SessionDep) -> Response:
    """The compared runs as one HTML file that opens offline (html), or their table as Markdown (md) or
    LaTeX booktabs (tex); the same query as /compare."""
    run_ids, baseline, mode = query
    return _written(report_service.compare_report(session=session, run_ids=run_ids, baseline=baseline, mode=mode), kind)


@router.get("/compare/figures/{name}.{image_format}", response_class=Response, responses=IMAGE)
async def compare_figure(
    name: FigureName, image_format: ImageFormat, query: CompareQuery, database: DatabaseDep
) -> Response:
    """One of the comparison's figures as SVG or PNG; 503 when no Chromium can draw it."""
    run_ids, baseline, mode = query
    report = await read_apart(
        database,
        lambda session: report_service.compare_report(session=session, run_ids=run_ids, baseline=baseline, mode=mode),
    )
    return await _image(report, name, image_format)


@router.get("/sweeps/{sweep_id}/report.{kind}", response_class=Response, responses=DOCUMENT)
def sweep_report(sweep_id: SweepId, kind: TextFormat, session: SessionDep, settings: SettingsDep) -> Response:
    """The sweep as one HTML file that opens offline (html): its space, the verdict and confirmation table,
    every trial, the figures; or its two tables (the confirmation's, the trials') as Markdown (md) or LaTeX
    booktabs (tex)."""
    return _written(sweep_report_service.sweep_report(session=session, settings=settings, sweep_id=sweep_id), kind)


@router.get("/sweeps/{sweep_id}/figures/{name}.{image_format}", response_class=Response, responses=IMAGE)
async def sweep_figure(
    sweep_id: SweepId, name: SweepFigureName, image_format: ImageFormat, database: DatabaseDep, settings: SettingsDep
) -> Response:
    """One of the sweep's figures as SVG or PNG (404 while Optuna cannot draw it yet); 503 when no Chromium
    can draw it."""
    report = await read_apart(
        database,
        lambda session: sweep_report_service.sweep_report(session=session, settings=settings, sweep_id=sweep_id),
    )
    return await _image(report, name, image_format)
