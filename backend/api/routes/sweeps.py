"""/api/v1/sweeps: an Optuna search over RunConfig keys, queued as ordinary runs by the server's controller."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from backend.api.deps import CreatorDep, Limit, SessionDep, SettingsDep, Skip, SweepId
from backend.api.responses import BODY, CHANGE, READ, READ_ONE
from backend.schemas.sweep_spec import SweepCreate
from backend.schemas.sweeps import SweepFigures, SweepPreset, SweepPublic, SweepsPublic
from backend.services import sweep_views, sweeps

router = APIRouter(prefix="/sweeps", tags=["sweeps"])


@router.post("", status_code=201, responses=BODY)
def create_sweep(body: SweepCreate, session: SessionDep, settings: SettingsDep, creator: CreatorDep) -> SweepPublic:
    """Check the sweep whole (every bad input a 422 naming its field) and store it; the server's sweep
    controller then asks Optuna for trials and queues their runs."""
    sweep = sweeps.create_sweep(session=session, settings=settings, request=body, created_by=creator)
    return sweep_views.sweep_public(session=session, sweep=sweep)


@router.get("", responses=READ)
def list_sweeps(session: SessionDep, skip: Skip = 0, limit: Limit = 100) -> SweepsPublic:
    found, count = sweeps.list_sweeps(session=session, skip=skip, limit=limit)
    return SweepsPublic(data=sweep_views.sweeps_public(session=session, sweeps=found), count=count)


@router.get("/presets", responses=READ)
def list_sweep_presets() -> list[SweepPreset]:
    """The seed report's two searches, as bodies for POST /sweeps (add a name and base)."""
    return sweep_views.presets()


@router.api_route("/presets", methods=["POST", "PATCH", "DELETE"], include_in_schema=False)
def presets_are_read_only() -> None:
    raise HTTPException(405, "the presets are read-only")


@router.get("/{sweep_id}", responses=READ_ONE)
def get_sweep(sweep_id: SweepId, session: SessionDep) -> SweepPublic:
    return sweep_views.sweep_public(session=session, sweep=sweeps.get_sweep(session=session, sweep_id=sweep_id))


@router.get("/{sweep_id}/figures", responses=READ_ONE)
def sweep_figures(sweep_id: SweepId, session: SessionDep, settings: SettingsDep) -> SweepFigures:
    """The objective per trial with the best so far, and Optuna's parallel coordinates, slice and
    PED-ANOVA importance, as Plotly JSON."""
    sweep = sweeps.get_sweep(session=session, sweep_id=sweep_id)
    return sweep_views.sweep_figures(session=session, settings=settings, sweep=sweep)


@router.post("/{sweep_id}/pause", responses=CHANGE)
def pause_sweep(sweep_id: SweepId, session: SessionDep) -> SweepPublic:
    """Queue no new trial or confirmation run; running ones finish and are told, and the wall clock stops
    (a 409 unless it is running or confirming)."""
    return sweep_views.sweep_public(session=session, sweep=sweeps.pause_sweep(session=session, sweep_id=sweep_id))


@router.post("/{sweep_id}/resume", responses=CHANGE)
def resume_sweep(sweep_id: SweepId, session: SessionDep) -> SweepPublic:
    """Go on searching, or confirming where it was paused in its confirmation (a 409 unless it is paused)."""
    return sweep_views.sweep_public(session=session, sweep=sweeps.resume_sweep(session=session, sweep_id=sweep_id))


@router.post("/{sweep_id}/cancel", responses=CHANGE)
def cancel_sweep(sweep_id: SweepId, session: SessionDep, settings: SettingsDep) -> SweepPublic:
    """Cancel its queued and running runs and stop it (a 409 once it has ended)."""
    sweep = sweeps.cancel_sweep(session=session, settings=settings, sweep_id=sweep_id)
    return sweep_views.sweep_public(session=session, sweep=sweep)
