"""GET /api/v1/workers: the workers and their devices, so a client can size what it launches."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import SessionDep, SettingsDep
from backend.schemas.workers import WorkersPublic
from backend.services import workers

router = APIRouter(prefix="/workers", tags=["workers"])


@router.get("")
def list_workers(session: SessionDep, settings: SettingsDep) -> WorkersPublic:
    """Workers seen in the last day, the living ones (seen within the stale timeout) first."""
    return workers.list_workers(session=session, stale_after_seconds=settings.stale_after_seconds)
