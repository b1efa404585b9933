"""Typed dependencies for the routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from backend.db import Database
from backend.models import MAX_ID
from backend.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_database(request: Request) -> Database:
    return request.app.state.database


def get_session(request: Request) -> Iterator[Session]:
    # Requests that change something open their transaction with BEGIN IMMEDIATE on SQLite.
    with get_database(request).session(write=request.method not in ("GET", "HEAD")) as session:
        yield session


def get_run_ids(
    run_ids: Annotated[str, Query(max_length=5000, description="comma-separated run ids, e.g. 1,2,3")],
) -> list[int]:
    parts = [part.strip() for part in run_ids.split(",")]
    if not all(part.isdigit() and 0 < int(part) <= MAX_ID for part in parts):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "run_ids"),
                    "input": run_ids,
                    "msg": "expected run ids separated by commas, e.g. 1,2,3",
                }
            ]
        )
    return [int(part) for part in parts]


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[Session, Depends(get_session)]
RunIdsDep = Annotated[list[int], Depends(get_run_ids)]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="run id")]
