"""The bodies of the security middleware's refusals, as the OpenAPI schema documents them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Refusal(BaseModel):
    detail: str = Field(description="what was refused, and what to send instead")


HOST_REFUSAL: dict[int | str, dict[str, Any]] = {
    400: {"model": Refusal, "description": "the Host header names a host this server does not answer"},
}
REFUSALS: dict[int | str, dict[str, Any]] = {
    **HOST_REFUSAL,
    401: {"model": Refusal, "description": "no valid token: send Authorization: Bearer TOKEN"},
    403: {
        "model": Refusal,
        "description": "a write sent from another origin's page, or by a log-in cookie without Origin or Referer",
    },
}
