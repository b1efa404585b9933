"""Typed dependencies for the routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from backend.db import Database
from backend.models import MAX_ID
from backend.reports.compare import Mode
from backend.security.auth import creator
from backend.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_database(request: Request) -> Database:
    return request.app.state.database


def get_session(request: Request) -> Iterator[Session]:
    # Requests that change something open their transaction with BEGIN IMMEDIATE on SQLite.
    with get_database(request).session(write=request.method not in ("GET", "HEAD")) as session:
        yield session


RUN_IDS_HELP = "comma-separated run ids, e.g. 1,2,3"


def _parse_run_ids(text: str, *, name: str) -> list[int]:
    """Each run named in ``text`` once, in order; a 422 naming the query parameter otherwise."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and 0 < int(part) <= MAX_ID for part in parts):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", name),
                    "input": text,
                    "msg": "expected run ids separated by commas, e.g. 1,2,3",
                }
            ]
        )
    return list(dict.fromkeys(int(part) for part in parts))


def get_run_ids(run_ids: Annotated[str, Query(max_length=5000, description=RUN_IDS_HELP)]) -> list[int]:
    return _parse_run_ids(run_ids, name="run_ids")


def get_page_run_ids(runs: Annotated[str, Query(max_length=5000, description=RUN_IDS_HELP)] = "") -> list[int]:
    """The compare page's ``runs``; without any, the page says how to pick them."""
    return _parse_run_ids(runs, name="runs") if runs else []


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[Session, Depends(get_session)]
# The name of the token behind the request (None on an open server), which runs and studies record.
CreatorDep = Annotated[str | None, Depends(creator)]
RunIdsDep = Annotated[list[int], Depends(get_run_ids)]
PageRunIdsDep = Annotated[list[int], Depends(get_page_run_ids)]
ModeQuery = Annotated[
    Mode, Query(description="best: the epoch with the best valid top-1 (the report's figure); final: the last epoch")
]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="run id")]
