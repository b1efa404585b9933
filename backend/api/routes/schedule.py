"""POST /api/v1/schedule/preview: the learning rate of each layer group per step, before launching."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from backend.api.deps import SettingsDep
from backend.api.responses import BODY
from backend.schemas.config import RunConfigBody
from backend.services.schedule import preview_schedule

router = APIRouter(prefix="/schedule", tags=["schedule"])


@router.post("/preview", responses=BODY)
def preview(settings: SettingsDep, config: Annotated[RunConfigBody, Body(embed=True)]) -> dict[str, Any]:
    """The trainer's own schedule on the submitted config, over the configured dataset's steps per epoch."""
    return preview_schedule(config=config, data_roots=settings.data_roots)
