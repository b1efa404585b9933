"""Response bodies of /api/v1/presets/teachers."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TeacherChoice(BaseModel):
    id: int
    name: str
    label: str = Field(description='e.g. "#7 T-LS (ResNet152 +LS, valid top-1 82.78)"')
    label_smoothing: float


class TeachersPublic(BaseModel):
    data: list[TeacherChoice] = Field(description="succeeded runs, the suggested teacher first")
    count: int
    suggested_id: int | None
    hint: str = Field(description="why the first run is suggested, or what to train first")
