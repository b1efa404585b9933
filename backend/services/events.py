"""Server-Sent Events for one run: an ``epoch`` event per new epoch row (its id is the epoch),
a ``status`` event at the start and on each status change, ``end`` once the run is final.

The database is polled with a fresh session per poll, in a worker thread, so the event loop
never blocks. A client that reconnects with ``Last-Event-ID: N`` gets the epochs after N: the
header is ours to read, sse-starlette leaves it to the application. The route sends the stream
with sse-starlette, which adds the keep-alive comments and cancels the stream when the client leaves.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio.to_thread
from sqlalchemy.exc import DBAPIError
from sse_starlette import ServerSentEvent

from backend.db import Database, is_unavailable, unavailable_reason
from backend.models import FINAL_STATUSES
from backend.schemas.metrics import EpochMetricPublic
from backend.schemas.runs import RunPublic
from backend.services import runs
from backend.services.errors import NotFound
from backend.settings import Settings

RECONNECT_MS = 2000

log = logging.getLogger(__name__)


def open_stream(
    *, database: Database, settings: Settings, run_id: int, after_epoch: int
) -> AsyncIterator[ServerSentEvent]:
    """Check the run exists (NotFound otherwise, before any byte is sent) and return its stream."""
    with database.session() as session:
        runs.get_run(session=session, run_id=run_id)
    return _stream(database=database, settings=settings, run_id=run_id, after_epoch=after_epoch)


def keep_alive() -> ServerSentEvent:
    """The comment a quiet stream sends, so that proxies keep the connection open."""
    return ServerSentEvent(comment="keep-alive")


def _poll(database: Database, settings: Settings, run_id: int, after_epoch: int):
    with database.session() as session:
        try:
            run = runs.get_run(session=session, run_id=run_id)
        except NotFound:
            return None, []
        public = runs.public_run(session=session, settings=settings, run=run)
        rows = runs.epoch_metrics(session=session, run_id=run_id, since=after_epoch)
        return public, [EpochMetricPublic.model_validate(row) for row in rows]


def _status_key(run: RunPublic) -> tuple:
    return run.status, run.attempt, run.cancel_requested, run.worker, run.failure_kind, run.start_epoch, run.start_step


def _run_event(event: str, run: RunPublic, cursor: int) -> ServerSentEvent:
    return ServerSentEvent(run.model_dump_json(), event=event, id=str(cursor))


async def _stream(
    *, database: Database, settings: Settings, run_id: int, after_epoch: int
) -> AsyncIterator[ServerSentEvent]:
    cursor = after_epoch
    sent_status = None
    yield ServerSentEvent(retry=RECONNECT_MS)
    outage = False
    while True:
        try:
            run, rows = await anyio.to_thread.run_sync(_poll, database, settings, run_id, cursor)
        except DBAPIError as exc:
            if not is_unavailable(exc):
                raise
            # The stream stays open through an outage, keep-alives and all, and goes on once it ends.
            if not outage:
                log.warning("events of run %s: database unavailable: %s", run_id, unavailable_reason(exc))
            outage = True
            await anyio.sleep(settings.sse_poll_seconds)
            continue
        outage = False
        if run is None:
            return  # deleted: a reconnect gets 404, which stops an EventSource
        if sent_status is None:
            yield _run_event("status", run, cursor)
            sent_status = _status_key(run)
        if run.epoch < cursor:
            # A resumed attempt superseded epochs this client saw: they are sent again when rewritten.
            cursor = run.epoch
        for row in rows:
            yield ServerSentEvent(row.model_dump_json(), event="epoch", id=str(row.epoch))
            cursor = row.epoch
        if _status_key(run) != sent_status:
            yield _run_event("status", run, cursor)
            sent_status = _status_key(run)
        if run.status in FINAL_STATUSES:
            yield _run_event("end", run, cursor)
            return
        await anyio.sleep(settings.sse_poll_seconds)
