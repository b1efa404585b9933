"""Server-Sent Events for one run: an ``epoch`` message per new epoch row (its id is the epoch),
a ``status`` message at the start and on each status change, ``end`` once the run is final.

The database is polled with a fresh session per poll, in a worker thread, so the event loop
never blocks. A client that reconnects with ``Last-Event-ID: N`` gets the epochs after N.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio.to_thread

from backend.db import Database
from backend.models import FINAL_STATUSES
from backend.schemas.metrics import EpochMetricPublic
from backend.schemas.runs import RunPublic
from backend.services import runs
from backend.services.errors import NotFound
from backend.settings import Settings

RECONNECT_MS = 2000


def open_stream(*, database: Database, settings: Settings, run_id: int, after_epoch: int) -> AsyncIterator[str]:
    """Check the run exists (NotFound otherwise, before any byte is sent) and return its stream."""
    with database.session() as session:
        runs.get_run(session=session, run_id=run_id)
    return _stream(database=database, settings=settings, run_id=run_id, after_epoch=after_epoch)


def message(event: str, data: str, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


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
    return run.status, run.attempt, run.cancel_requested, run.worker, run.failure_kind, run.start_epoch


async def _stream(*, database: Database, settings: Settings, run_id: int, after_epoch: int) -> AsyncIterator[str]:
    cursor = after_epoch
    sent_status = None
    last_sent = time.monotonic()
    yield f"retry: {RECONNECT_MS}\n\n"
    while True:
        run, rows = await anyio.to_thread.run_sync(_poll, database, settings, run_id, cursor)
        if run is None:
            return  # deleted: a reconnect gets 404, which stops an EventSource
        messages = []
        if sent_status is None:
            messages.append(message("status", run.model_dump_json(), cursor))
            sent_status = _status_key(run)
        if run.epoch < cursor:
            # A resumed attempt superseded epochs this client saw: they are sent again when rewritten.
            cursor = run.epoch
        for row in rows:
            messages.append(message("epoch", row.model_dump_json(), row.epoch))
            cursor = row.epoch
        if _status_key(run) != sent_status:
            messages.append(message("status", run.model_dump_json(), cursor))
            sent_status = _status_key(run)
        if run.status in FINAL_STATUSES:
            messages.append(message("end", run.model_dump_json(), cursor))
        if messages:
            yield "".join(messages)
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent >= settings.sse_keepalive_seconds:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        if run.status in FINAL_STATUSES:
            return
        await anyio.sleep(settings.sse_poll_seconds)
