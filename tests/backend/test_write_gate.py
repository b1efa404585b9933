"""Writes wait for the database's write lock without holding the threads reads need, and a write that
waits too long is told to try again (503) instead of hanging."""

from __future__ import annotations

import sqlite3
import threading
import time

import anyio
import httpx
import pytest
from sqlalchemy.engine import make_url

from backend.db import DatabaseBusy, Gate

WRITERS = 45  # more than the server's 40 pool threads


def test_reads_answer_while_writes_queue_behind_a_held_write_lock(make_settings, sqlite_url, data_root, live_server):
    base = live_server(make_settings(sqlite_url))
    body = {"config": {"name": "queued behind the lock", "data": {"root": str(data_root)}}}
    # Another process's long write transaction: every write of the server has to wait for it.
    holder = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    answers: list[int] = []

    def write() -> None:
        answers.append(httpx.post(f"{base}/api/v1/runs", json=body, timeout=60).status_code)

    writers = [threading.Thread(target=write) for _ in range(WRITERS)]
    try:
        for writer in writers:
            writer.start()
        time.sleep(1)  # the writes are queued now
        for _ in range(5):
            started = time.monotonic()
            assert httpx.get(f"{base}/api/v1/runs", timeout=30).status_code == 200
            assert time.monotonic() - started < 2, "a read waited behind the writes"
        assert answers == [], "no write can have finished while the lock is held"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for writer in writers:
        writer.join(timeout=60)
    assert answers == [201] * WRITERS
    assert httpx.get(f"{base}/api/v1/runs", timeout=30).json()["count"] == WRITERS


def test_a_write_that_waits_past_the_bound_is_told_the_database_is_busy():
    gate = Gate(1, what="writes", wait_seconds=0.2)
    outcomes: list[str] = []

    async def hold() -> None:
        async with gate.turn():
            await anyio.sleep(1)
            outcomes.append("first done")

    async def queued() -> None:
        await anyio.sleep(0.05)
        with pytest.raises(DatabaseBusy, match="try again"):
            async with gate.turn():
                outcomes.append("must not run")
        outcomes.append("second refused")

    async def both() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold)
            tasks.start_soon(queued)

    anyio.run(both)
    assert outcomes == ["second refused", "first done"]
