"""SQLite's planner statistics (``sqlite_stat1``), made where the runs table has none or has grown or
shrunk tenfold since they were made.

Without them SQLite guesses that one value of an index holds ten rows: a filter on a config key that
a third of the runs share (``config.schedule.name = "cosine"``) would read that key's index and sort
every match, not page down the sort's index. PostgreSQL's autovacuum keeps its own; SQLite makes them
only when asked. The server asks at start, after its migrations (before it serves), and then
hourly (``keep_current``); the check is one count, ANALYZE runs only on a tenfold change (ANALYZE of 10,000
runs: about 0.1 s, holding the write lock).
"""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from backend.db import Database, unavailable_reason
from backend.models import Run

GROWTH = 10
INTERVAL_S = 3600.0
log = logging.getLogger("tricklab.statistics")


def refresh(database: Database) -> bool:
    """ANALYZE the runs table where its statistics are missing or off by ``GROWTH``; whether it did."""
    if database.engine.dialect.name != "sqlite":
        return False
    with database.transaction(write=True) as session:
        runs = session.scalar(select(func.count()).select_from(Run)) or 0
        made = session.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
        stat = made and session.scalar(text("SELECT stat FROM sqlite_stat1 WHERE tbl = 'runs' LIMIT 1"))
        analysed = int(stat.split()[0]) if stat else None
        if runs == 0 or (analysed is not None and analysed < runs * GROWTH and runs < analysed * GROWTH):
            return False
        session.execute(text("ANALYZE runs"))
    # A connection loads the statistics with the schema, and ANALYZE does not make others reload it.
    database.engine.dispose()
    database.write_engine.dispose()
    return True


async def keep_current(database: Database) -> None:
    """``refresh`` every ``INTERVAL_S`` seconds, in a thread, until cancelled."""
    while True:
        await anyio.sleep(INTERVAL_S)
        try:
            await anyio.to_thread.run_sync(refresh, database)
        except DBAPIError as exc:
            # Raised out of this task, it would end the server: a database locked or away now is tried
            # again at the next interval.
            log.warning("planner statistics not refreshed (%s); tried again in an hour", unavailable_reason(exc))
