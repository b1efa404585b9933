"""Response bodies of /api/v1/presets/teachers."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TeacherChoice(BaseModel):
    id: int = Field(description="the run's id")
    name: str
    label: str = Field(description='e.g. "#7 T-LS (ResNet152 +LS, peak valid top-1 82.78)"')
    label_smoothing: float = Field(description="the run's label smoothing (tricks.label_smoothing, 0-1)")


class TeachersPublic(BaseModel):
    data: list[TeacherChoice] = Field(description="succeeded runs, the suggested teacher first")
    count: int = Field(description="runs in data")
    suggested_id: int | None = Field(description="the suggested teacher run; null when no run fits")
    hint: str = Field(description="why the first run is suggested, or what to train first")
