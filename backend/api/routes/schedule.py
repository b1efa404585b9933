"""POST /api/v1/schedule/preview: the learning rate of each layer group per step, before launching."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from backend.api.deps import ReadSessionDep, SettingsDep
from backend.api.responses import BODY
from backend.schemas.config import RunConfigBody
from backend.services.schedule import preview_schedule

router = APIRouter(prefix="/schedule", tags=["schedule"])


@router.post("/preview", responses=BODY)
def preview(
    session: ReadSessionDep, settings: SettingsDep, config: Annotated[RunConfigBody, Body(embed=True)]
) -> dict[str, Any]:
    """The trainer's own schedule on the submitted config, over the configured dataset's steps per epoch,
    and the GPU memory a training step takes (gpu_memory, approximate), with a warning in warnings when no
    living worker's GPU holds it."""
    return preview_schedule(session=session, settings=settings, config=config)
