"""Typed dependencies for the routes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Literal, TypeVar

import anyio.to_thread
from fastapi import Depends, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from backend.db import Database
from backend.models import MAX_ID, RunKind, RunStatus
from backend.schemas.compare import Mode
from backend.security.auth import creator
from backend.services import run_listing
from backend.services.filter_language import MAX_LENGTH
from backend.services.run_listing import SORT_HELP, SORT_PATTERN
from backend.settings import Settings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")


# Dependencies that only read the request are async: FastAPI runs a sync one in a pool thread.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_database(request: Request) -> Database:
    return request.app.state.database


async def database_turn(request: Request) -> AsyncIterator[None]:
    """Each request waits for its turn here, in the event loop, before it takes a thread and a
    transaction: reads at the read gate, writes at the write gate (see backend.db.Gate)."""
    database: Database = request.app.state.database
    gate = database.read_gate if request.method in READ_METHODS else database.write_gate
    async with gate.turn():
        yield


async def get_session(
    request: Request, _turn: Annotated[None, Depends(database_turn, scope="function")]
) -> AsyncIterator[Session]:
    """The request's session, made in the event loop: a session touches the database only when the
    route (in a pool thread) first queries, so making it here saves the request two thread hops.
    Requests that change something open their transaction with BEGIN IMMEDIATE on SQLite."""
    write = request.method not in READ_METHODS
    session = request.app.state.database.session(write=write)
    try:
        yield session
    finally:
        if write:
            # A write's session may still hold a transaction to roll back: not in the event loop.
            await anyio.to_thread.run_sync(session.close)
        else:
            session.close()  # hands a read's connection back to the pool


async def read_turn(request: Request) -> AsyncIterator[None]:
    async with request.app.state.database.read_gate.turn():
        yield


async def get_read_session(
    request: Request, _turn: Annotated[None, Depends(read_turn, scope="function")]
) -> AsyncIterator[Session]:
    """A session that only reads, whatever the method: a POST that previews what a write would do
    never waits for SQLite's write lock, so it answers while another process holds that lock."""
    session = request.app.state.database.session()
    try:
        yield session
    finally:
        session.close()


RUN_IDS_HELP = "comma-separated run ids, e.g. 1,2,3"
# ASCII digits only (str.isdigit() and int() also take "²" and "١"), no leading zero; ten digits hold
# every id, and an id of ten past the largest one names no run (404, as any unknown id).
RUN_IDS_PATTERN = r"^ *[1-9][0-9]{0,9} *(, *[1-9][0-9]{0,9} *)*$"
_RUN_IDS = re.compile(RUN_IDS_PATTERN)
RUN_IDS_MAX_LENGTH = 5000


def _parse_run_ids(text: str, *, name: str) -> list[int]:
    """Each run named in ``text`` once, in order; a 422 naming the query parameter otherwise."""
    if not _RUN_IDS.fullmatch(text):
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
    return list(dict.fromkeys(int(part) for part in text.split(",")))


# The schema says what _parse_run_ids checks; _parse_run_ids says what is wrong in our words.
RunIdsQuery = Query(
    max_length=RUN_IDS_MAX_LENGTH,
    description=RUN_IDS_HELP,
    json_schema_extra={"pattern": RUN_IDS_PATTERN, "minLength": 1},
)


async def get_run_ids(run_ids: Annotated[str, RunIdsQuery]) -> list[int]:
    return _parse_run_ids(run_ids, name="run_ids")


async def get_page_run_ids(
    runs: Annotated[str, Query(max_length=RUN_IDS_MAX_LENGTH, description=RUN_IDS_HELP)] = "",
) -> list[int]:
    """The compare page's ``runs``; without any, the page says how to pick them."""
    return _parse_run_ids(runs, name="runs") if runs else []


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
# The name of the token behind the request (None on an open server), which runs and studies record.
CreatorDep = Annotated[str | None, Depends(creator)]
RunIdsDep = Annotated[list[int], Depends(get_run_ids)]
PageRunIdsDep = Annotated[list[int], Depends(get_page_run_ids)]
ModeQuery = Annotated[
    Mode,
    Query(
        description="peak: the epoch with the highest valid top-1, earliest on a tie (the report's figure); "
        "final: the last epoch"
    ),
]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="run id")]
StudyId = Annotated[int, Path(ge=1, le=MAX_ID, description="study id")]
SweepId = Annotated[int, Path(ge=1, le=MAX_ID, description="sweep id")]
# Offsets and counts past any table's size; bounded so that no value overflows a 64-bit column.
Skip = Annotated[int, Query(ge=0, le=MAX_ID, description="rows to leave out, for paging")]
Limit = Annotated[int, Query(ge=1, le=1000, description="rows per page")]
# The runs list's filter language and sort (backend.services.run_listing), for /runs and /run-groups.
FILTER_HELP = (
    "a condition in tricklab's filter language (README, 'Finding runs'), e.g. "
    '`config.tricks.mixup_alpha > 0 and (name ilike "%cosine%" or status = "failed") and peak.valid_top1 >= 80`. '
    "Operators: and, or, not, parentheses, = != < <= > >=, in (...), not in, like / ilike (% and _), "
    "is [not] null, exists. Fields: run fields (id, name, status, kind, priority, study, attempt, created_at, "
    "started_at, finished_at, created_by, worker, config_hash, configuration, notes), tag (one of the "
    'run\'s tags: tag = "keep" carries it, tag != "keep" does not, tag exists has any), config.<key> (the stored '
    "RunConfig), a finished run's figures peak.{epoch,valid_top1,valid_top5}, checkpoint.{epoch,valid_loss,"
    "valid_top1,valid_top5}, test.{loss,top1,top5}, and the last epoch's final.{epoch,train_loss,train_top1,"
    "train_top5,valid_loss,valid_top1,valid_top5,lr,seconds,images_per_s}. A number compares with numbers "
    "only; a missing value matches no comparison, and not takes the complement. A syntax error is a 422 "
    f"naming the column and what was expected; at most {MAX_LENGTH} characters"
)
FilterQuery = Annotated[str | None, Query(max_length=MAX_LENGTH, description=FILTER_HELP)]
SortQuery = Annotated[str, Query(pattern=SORT_PATTERN, description=SORT_HELP)]
ArchivedQuery = Annotated[
    Literal["false", "true", "any"],
    Query(description="false: leave archived runs out (the default); true: only archived runs; any: both"),
]


def runs_where(
    filter: FilterQuery = None,
    status: Annotated[list[RunStatus] | None, Query(description="repeat for several")] = None,
    kind: Annotated[list[RunKind] | None, Query(description="training or lr_range; repeat for both")] = None,
    name: Annotated[str | None, Query(max_length=200, description="part of the name, any case")] = None,
    study_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    created_by: Annotated[str | None, Query(max_length=64, description="name of the token that queued it")] = None,
    archived: ArchivedQuery = "false",
) -> run_listing.Where:
    """Which runs the runs list and its epochs CSV hold: every filter given, at once."""
    return run_listing.Where(
        filter_text=filter,
        statuses=status or (),
        kinds=kind or (),
        name=name,
        study_id=study_id,
        created_by=created_by,
        archived=run_listing.ARCHIVED[archived],
    )


RunsWhere = Annotated[run_listing.Where, Depends(runs_where)]


# A key the client makes up per create (a UUID does); a retry with the same key and body gets the
# first request's result instead of a second run.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,255}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


async def get_idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="any printable ASCII text unique to this create, e.g. a UUID: a retry with the same "
            "key and body returns the first result instead of creating again",
            json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN},
        ),
    ] = None,
) -> str | None:
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("header", "Idempotency-Key"),
                    "input": key,
                    "msg": "expected 1 to 255 printable ASCII characters without spaces, e.g. a UUID",
                }
            ]
        )
    return key


IdempotencyKeyDep = Annotated[str | None, Depends(get_idempotency_key)]


async def read_apart(database: Database, work: Callable[[Session], T]) -> T:
    """``work`` with a read session at the read gate, in a pool thread; the gate's turn and the
    connection are given back as soon as it returns, before whatever slow step follows (a figure drawn
    in a browser), which would otherwise hold a read slot of the dashboard."""
    async with database.read_gate.turn():

        def run() -> T:
            with database.session() as session:
                return work(session)

        return await anyio.to_thread.run_sync(run)
