"""The bodies of error responses, as the OpenAPI schema documents them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorPublic(BaseModel):
    """400, 404, 409, 413 and 503: one message that says what is wrong and what to do."""

    detail: str


class FieldError(BaseModel):
    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description='where: ["body", "config", "epochs"], ["query", "run_ids"], ...')
    msg: str
    type: str
    input: Any = Field(None, description="what was sent there, shortened when long")


class ValidationErrorPublic(BaseModel):
    """422: one entry per field at fault."""

    detail: list[FieldError]
