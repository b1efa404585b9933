"""Engine and sessions.

SQLite follows the pysqlite recipe from SQLAlchemy's SQLite docs: the driver's own BEGIN handling is
switched off and we emit BEGIN ourselves, so a read transaction really is one snapshot, and write
transactions start with BEGIN IMMEDIATE: they take the write lock up front instead of failing with
"database is locked" when a read turns into a write while another process writes.

Reads and writes have engines (and so connection pools) of their own, so that a burst of writes
never takes the connections reads need. The web process also queues each request at a ``Gate`` of
its kind before it takes a thread: SQLite lets one transaction write at a time, and writers that each
waited inside SQLite's busy handler would hold a thread of the server's pool apiece, the threads
reads need; reads have a gate of their own, so they never queue behind writes, nor writes behind them.

A connection that finds the database read-only, full or failing keeps that state on SQLite (a file
opened while it could not be written stays read-only), so such an error drops the pool's
connections: once the database is writable again, the next request opens a fresh connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import anyio
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

_IMMEDIATE = "tricklab_begin_immediate"
# Requests at work at once. SQLite allows one writer; PostgreSQL locks rows, so two writes can overlap.
# A request is mostly Python holding the GIL: past a few at once they only take turns with it, and a
# write slowed by many readers holds the one write slot longer (bench.api_load: 3 reads at once gave a
# p99 of 0.76 s where 6 gave 1.24 s and 40 threads 1.97 s).
SQLITE_READ_SLOTS, POSTGRES_READ_SLOTS = 3, 3
SQLITE_WRITE_SLOTS, POSTGRES_WRITE_SLOTS = 1, 2
# SQLite's wait for another connection's lock (TRICKLAB_SQLITE_BUSY_TIMEOUT_SECONDS sets it).
BUSY_TIMEOUT_SECONDS = 30.0
# How long a request waits for its turn before the client is told to try again (503).
WAIT_SECONDS = 10.0
# SQLite's errors after which a connection must not be reused: it may have opened the file read-only.
_SQLITE_STALE_STATES = ("SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_CORRUPT")


class DatabaseBusy(Exception):
    """A request queued for its turn longer than ``WAIT_SECONDS``: the client should try again (503)."""


def make_engine(
    url: str, *, pool_size: int = 5, max_overflow: int = 10, busy_timeout_seconds: float = BUSY_TIMEOUT_SECONDS
) -> Engine:
    """``busy_timeout_seconds``: how long a SQLite statement waits for another connection's lock before
    it fails with "database is locked" (which the server answers with a 503)."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_seconds, "check_same_thread": False},
        pool_size=pool_size,
        max_overflow=max_overflow,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={round(busy_timeout_seconds * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a commit costs no fsync
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        error = context.original_exception
        if isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorname", "").startswith(_SQLITE_STALE_STATES):
            context.is_disconnect = True  # SQLAlchemy then drops every pooled connection

    return engine


def is_unavailable(error: BaseException) -> bool:
    """The database could not be reached or used for now (refused, down, locked past its timeout,
    read-only, full): a later try may work, so callers answer 503 or wait, never fail for good."""
    return isinstance(error, OperationalError) or (isinstance(error, DBAPIError) and error.connection_invalidated)


def unavailable_reason(error: DBAPIError) -> str:
    """The driver's first line (``connection refused``, ``database is locked``), without SQLAlchemy's decor."""
    return str(error.orig).strip().splitlines()[0][:200] if error.orig else type(error).__name__


class Gate:
    """Lets ``slots`` requests of one kind (reads, or writes) of this process work at once; the others
    wait in the event loop, holding no thread, first come first served, for at most ``wait_seconds``
    (then DatabaseBusy). Reads and writes have gates of their own, so neither waits for the other."""

    def __init__(self, slots: int, *, what: str, wait_seconds: float = WAIT_SECONDS):
        self.slots = slots
        self.what = what
        self.wait_seconds = wait_seconds
        self._semaphore: anyio.Semaphore | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if self._semaphore is None:  # made in the event loop that uses it
            self._semaphore = anyio.Semaphore(self.slots)
        with anyio.move_on_after(self.wait_seconds) as waiting:
            await self._semaphore.acquire()
        if waiting.cancelled_caught:
            raise DatabaseBusy(
                f"the database is busy: {self.what} have queued for more than {self.wait_seconds:g} s; "
                "try again shortly"
            )
        try:
            yield
        finally:
            self._semaphore.release()


class Database:
    """Two engines, for reads and for writes (BEGIN IMMEDIATE on SQLite), and the web process's gates."""

    def __init__(self, url: str, *, busy_timeout_seconds: float = BUSY_TIMEOUT_SECONDS):
        self.url = url
        sqlite = url.startswith("sqlite")
        read_slots = SQLITE_READ_SLOTS if sqlite else POSTGRES_READ_SLOTS
        write_slots = SQLITE_WRITE_SLOTS if sqlite else POSTGRES_WRITE_SLOTS
        # Beyond the gated requests' connections: the event streams' polls, the worker's own writes.
        self.engine = make_engine(url, pool_size=read_slots, max_overflow=8, busy_timeout_seconds=busy_timeout_seconds)
        self.write_engine = make_engine(
            url, pool_size=write_slots, max_overflow=2, busy_timeout_seconds=busy_timeout_seconds
        )
        self.read_gate = Gate(read_slots, what="reads")
        self.write_gate = Gate(write_slots, what="writes")
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(self.write_engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False)

    def session(self, *, write: bool = False) -> Session:
        return (self._writes if write else self._reads)()

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Session]:
        """A session inside one transaction, committed on success and rolled back on error."""
        with self.session(write=write) as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        self.write_engine.dispose()
