"""The dashboard's HTML pages: server-rendered shells whose scripts draw the /api/v1 JSON.

``router`` holds the page routes, the API's documentation pages and the vendored scripts: Plotly's
bundle from the installed plotly package and Swagger UI's and ReDoc's from fastapi-offline's, so
that the dashboard and its docs work offline and each bundle always matches its package. The app
serves ``STATIC`` (the pages' own scripts and styles) at /static.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import fastapi_offline
import plotly
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from backend.api.deps import ModeQuery, PageRunIdsDep, SessionDep, SettingsDep
from backend.api.query import KnownQueryOnly
from backend.models import MAX_ID, RunKind, RunStatus
from backend.reports.labels import logged_lr_groups
from backend.schemas.compare import MODES
from backend.schemas.study_spec import CPU_TRYOUT, SEED_RUNS, SWITCHES
from backend.schemas.sweep_spec import OBJECTIVES, PRESETS
from backend.security.auth import current_principal
from backend.services import lr_range, studies, sweeps, workers
from backend.services import runs as run_service
from backend.services.compare import missing_runs
from backend.services.errors import NotFound
from backend.services.filter_language import MAX_LENGTH
from backend.services.presets import presets_public
from backend.services.run_listing import SORT_PATTERN
from backend.web.forms import build_form, study_defaults
from trainer.config import RunConfig
from trainer.presets import DEMO, STUDY

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
STATIC = FRONTEND / "static"
VENDOR = {
    "plotly.min.js": Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
    **{
        name: Path(fastapi_offline.__file__).parent / "static" / name
        for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")
    },
}
PALETTE = list(plotly.colors.qualitative.Dark24)


def _principal(request: Request) -> dict[str, object]:
    # Every page's header says who is logged in, with the log-out button.
    return {"principal": current_principal(request)}


templates = Jinja2Templates(directory=FRONTEND / "templates", context_processors=[_principal])
# Pages refuse an unknown query parameter too (backend/api/query.py): /compare?run=1,2 says so rather
# than showing an empty comparison.
router = APIRouter(include_in_schema=False, dependencies=[KnownQueryOnly])

PageId = Annotated[int, PathParam(ge=1, le=MAX_ID)]


def _page(request: Request, template: str, **context: object) -> HTMLResponse:
    return templates.TemplateResponse(request, template, {"palette": PALETTE, **context})


async def _runs_query(
    status: Annotated[RunStatus | None, Query(description="the list's status filter")] = None,
    kind: Annotated[RunKind | None, Query(description="the list's kind filter")] = None,
    name: Annotated[str | None, Query(max_length=200, description="the list's name filter")] = None,
    filter: Annotated[str | None, Query(max_length=MAX_LENGTH, description="the list's filter language")] = None,
    sort: Annotated[str | None, Query(pattern=SORT_PATTERN, description="the list's sort column")] = None,
    group: Annotated[Literal["seeds"] | None, Query(description="seeds: one row per configuration")] = None,
    archived: Annotated[
        Literal["false", "true", "any"] | None, Query(description="the list's Shown filter: archived runs or all")
    ] = None,
) -> None:
    """The view runs.js reads from the page's address, declared so that any other name is refused (the
    filter's own errors are said beside its box, from the API)."""


@router.get("/", response_class=HTMLResponse, dependencies=[Depends(_runs_query)])
def runs_page(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    paused = workers.paused_workers(session=session, stale_after_seconds=settings.stale_after_seconds)
    return _page(request, "runs.html", page="runs", paused=paused)


async def _launch_query(
    clone: Annotated[str | None, Query(description="a run whose config fills the form")] = None,
    lr: Annotated[str | None, Query(description="with clone: the optim.lr an LR range test suggests")] = None,
    preset: Annotated[str | None, Query(description="a preset's key")] = None,
) -> None:
    """What launch.js reads from the page's address, declared so that any other name is refused; the
    script checks the values (a run that cannot be cloned is said on the form)."""


@router.get("/runs/new", response_class=HTMLResponse, dependencies=[Depends(_launch_query)])
def launch_page(request: Request) -> HTMLResponse:
    return _page(
        request, "launch.html", page="launch", groups=build_form(), demo=DEMO, study=STUDY, presets=presets_public()
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse, response_model=None)
def run_page(
    request: Request, run_id: PageId, session: SessionDep, settings: SettingsDep
) -> HTMLResponse | RedirectResponse:
    run = run_service.get_run(session=session, run_id=run_id)
    if run.kind == RunKind.lr_range:
        # Its page is its curve: it has no epochs to chart.
        return RedirectResponse(f"/lr-range-tests/{run_id}", status_code=303)
    lr_groups = logged_lr_groups(RunConfig.model_validate(run.config))
    paused = workers.paused_workers(session=session, stale_after_seconds=settings.stale_after_seconds)
    return _page(request, "run.html", page="run", run_id=run_id, name=run.name, lr_groups=lr_groups, paused=paused)


@router.get("/lr-range-tests/{run_id}", response_class=HTMLResponse)
def lr_range_page(request: Request, run_id: PageId, session: SessionDep) -> HTMLResponse:
    test = lr_range.get_range_test(session=session, run_id=run_id)
    return _page(request, "lr_range.html", page="runs", run_id=run_id, name=test.name)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request, run_ids: PageRunIdsDep, session: SessionDep, baseline: int | None = None, mode: ModeQuery = "peak"
) -> HTMLResponse:
    missing = missing_runs(session=session, run_ids=run_ids)
    if run_ids and len(missing) == len(run_ids):
        raise NotFound(f"run{'s' if len(run_ids) > 1 else ''} {', '.join(map(str, run_ids))} not found")
    present = [run_id for run_id in run_ids if run_id not in missing]
    return _page(
        request,
        "compare.html",
        page="compare",
        run_ids=present,
        missing=missing,
        baseline=baseline if baseline in present else None,
        mode=mode,
        modes=MODES,
    )


@router.get("/studies", response_class=HTMLResponse)
def studies_page(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    fleet = workers.list_workers(session=session, stale_after_seconds=settings.stale_after_seconds)
    return _page(
        request,
        "study_index.html",
        page="studies",
        switches=SWITCHES,
        study_size=SEED_RUNS,
        defaults=study_defaults(fleet, data_root=settings.data_roots[0]),
    )


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(request: Request, study_id: PageId, session: SessionDep) -> HTMLResponse:
    study = studies.get_study(session=session, study_id=study_id)
    return _page(request, "study.html", page="studies", study_id=study_id, name=study.name)


# A sweep's base that trains in minutes on a CPU (the studies' try-out, less the teacher's key).
SWEEP_TRYOUT = {key: value for key, value in CPU_TRYOUT.items() if not key.startswith("teacher.")}


@router.get("/sweeps", response_class=HTMLResponse)
def sweeps_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    base = {**SWEEP_TRYOUT, "data.root": str(settings.data_roots[0])}
    space = {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
    return _page(
        request,
        "sweep_index.html",
        page="sweeps",
        presets=PRESETS,
        objectives=[(key, objective.title) for key, objective in OBJECTIVES.items()],
        base=json.dumps(base, indent=2),
        space=json.dumps(space, indent=2),
    )


@router.get("/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, sweep_id: PageId, session: SessionDep) -> HTMLResponse:
    sweep = sweeps.get_sweep(session=session, sweep_id=sweep_id)
    return _page(request, "sweep.html", page="sweeps", sweep_id=sweep_id, name=sweep.name)


@router.get("/docs", response_class=HTMLResponse)
def swagger_page(request: Request) -> HTMLResponse:
    return _page(request, "docs.html", page="docs")


@router.get("/redoc", response_class=HTMLResponse)
def redoc_page(request: Request) -> HTMLResponse:
    return _page(request, "redoc.html", page="docs")


@router.get("/vendor/{name}")
def vendor_file(name: str) -> FileResponse:
    if name not in VENDOR:
        raise NotFound(f"file {name} not found")
    media = "text/css" if name.endswith(".css") else "text/javascript"
    # Megabytes that change only with their package: let the browser keep them.
    return FileResponse(VENDOR[name], media_type=media, headers={"Cache-Control": "public, max-age=86400"})
