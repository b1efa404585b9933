"""SQLite's planner statistics: made where the runs table has none (at a server's start), made again
only after a tenfold change, and planned with by the connections already in the pool."""

from __future__ import annotations

import os
import sqlite3

import anyio
from sqlalchemy import text

from backend import statistics
from backend.db import Database
from backend.services import run_listing
from bench.runs_filter_data import seed_tricklab
from tests.testlib.plans import plan
from tricklab.local import serving

# Every seeded run's architecture: with statistics SQLite knows that the key's index holds them all.
ARCH = 'config.model.arch = "resnet50"'


def analysed_runs(database) -> int | None:
    with database.session() as session:
        if session.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first() is None:
            return None
        stat = session.scalar(text("SELECT stat FROM sqlite_stat1 WHERE tbl = 'runs' LIMIT 1"))
        return int(stat.split()[0]) if stat else None


def arch_plan(database) -> str:
    with database.session() as session:
        where = run_listing.Where(filter_text=ARCH)
        found = run_listing.list_statements(
            session=session, where=where, order=run_listing.Sort.of("-peak.valid_top1"), cursor=None, skip=0, limit=100
        )
        assert found is not None
        return plan(session, found[1])  # the page: down the sort's index, or every match sorted


def test_statistics_are_made_where_missing_and_again_after_a_tenfold_change(sqlite_url, make_settings, make_database):
    database = make_database(make_settings(sqlite_url))
    assert not statistics.refresh(database)  # no runs: nothing to learn
    seed_tricklab(sqlite_url, start=0, stop=30, epochs=1)
    # Without statistics SQLite guesses that one value holds ten runs: it reads them from the key's
    # index and sorts them.
    assert "TEMP B-TREE" in arch_plan(database)
    assert statistics.refresh(database) and analysed_runs(database) == 30
    # The pooled connection that planned above plans with them now: every run holds the value.
    assert "TEMP B-TREE" not in arch_plan(database)
    seed_tricklab(sqlite_url, start=30, stop=299, epochs=1)
    assert not statistics.refresh(database) and analysed_runs(database) == 30
    seed_tricklab(sqlite_url, start=299, stop=300, epochs=1)
    assert statistics.refresh(database) and analysed_runs(database) == 300


def test_a_server_makes_them_at_start(tmp_path, sqlite_url, make_settings, make_database):
    settings = make_settings(sqlite_url)
    database = make_database(settings)
    seed_tricklab(sqlite_url, start=0, stop=20, epochs=1)
    assert analysed_runs(database) is None
    with serving(cwd=tmp_path, env={**os.environ, **settings.environ()}, log=tmp_path / "serve.log"):
        assert analysed_runs(database) == 20


def test_the_hourly_refresh_outlives_a_locked_database(sqlite_url, make_database, make_settings, monkeypatch, caplog):
    """Raised out of its task, a refresh that meets a locked file would end the server it runs in."""
    make_database(make_settings(sqlite_url))  # migrated
    database = Database(sqlite_url, busy_timeout_seconds=0.1)
    monkeypatch.setattr(statistics, "INTERVAL_S", 0.05)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    holder.execute("BEGIN EXCLUSIVE")
    try:

        async def run_a_while() -> None:
            with anyio.move_on_after(1):
                await statistics.keep_current(database)

        anyio.run(run_a_while)
    finally:
        holder.rollback()
        holder.close()
        database.dispose()
    refused = [record.getMessage() for record in caplog.records if record.name == "tricklab.statistics"]
    assert refused and all("database is locked" in message for message in refused), refused
