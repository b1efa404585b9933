"""The dashboard's HTML pages: server-rendered shells whose scripts draw the /api/v1 JSON.

``router`` holds the page routes and Plotly's bundle, which is served from the installed plotly
package so that the dashboard works offline and the bundle always matches it; the app serves
``STATIC`` (the pages' scripts and styles) at /static.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from backend.api.deps import ModeQuery, PageRunIdsDep
from backend.reports.compare import MODES
from backend.security.auth import current_principal
from backend.services.study_plan import SEED_RUNS, SWITCHES
from backend.web.forms import build_form, presets_public
from trainer.presets import DEMO, STUDY

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
STATIC = FRONTEND / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _principal(request: Request) -> dict[str, object]:
    # Every page's header says who is logged in, with the log-out button.
    return {"principal": current_principal(request)}


templates = Jinja2Templates(directory=FRONTEND / "templates", context_processors=[_principal])
router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, **context: object) -> HTMLResponse:
    return templates.TemplateResponse(request, template, context)


@router.get("/", response_class=HTMLResponse)
def runs_page(request: Request) -> HTMLResponse:
    return _page(request, "runs.html", page="runs")


@router.get("/runs/new", response_class=HTMLResponse)
def launch_page(request: Request) -> HTMLResponse:
    return _page(
        request, "launch.html", page="launch", groups=build_form(), demo=DEMO, study=STUDY, presets=presets_public()
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: int) -> HTMLResponse:
    return _page(request, "run.html", page="run", run_id=run_id)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request, run_ids: PageRunIdsDep, baseline: int | None = None, mode: ModeQuery = "best"
) -> HTMLResponse:
    if baseline not in run_ids:
        baseline = run_ids[0] if run_ids else None
    return _page(request, "compare.html", page="compare", run_ids=run_ids, baseline=baseline, mode=mode, modes=MODES)


@router.get("/studies", response_class=HTMLResponse)
def studies_page(request: Request) -> HTMLResponse:
    return _page(request, "study_index.html", page="studies", switches=SWITCHES, study_size=SEED_RUNS)


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(request: Request, study_id: int) -> HTMLResponse:
    return _page(request, "study.html", page="studies", study_id=study_id)


@router.get("/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    # Five megabytes that change only with the plotly package: let the browser keep them.
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})
