"""Upgrade the database to the newest Alembic revision, safely from several processes at once.

The server and each worker upgrade at start; a lock makes the first one do the work and the others
find the schema at head: an advisory lock on PostgreSQL, a lock file beside a SQLite database.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from backend.db import Database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_PG_LOCK_KEY = 0x7472_6963  # "tric": any constant shared by all tricklab processes


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    with _migration_lock(database), database.engine.connect() as connection:
        command.upgrade(alembic_config(connection), revision)
        connection.commit()


def downgrade(database: Database, revision: str = "base") -> None:
    with _migration_lock(database), database.engine.connect() as connection:
        command.downgrade(alembic_config(connection), revision)
        connection.commit()


@contextmanager
def _migration_lock(database: Database) -> Iterator[None]:
    if database.engine.dialect.name == "sqlite":
        lock_path = Path(f"{make_url(database.url).database}.migrate-lock")
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    # A session-level lock on its own connection: held across Alembic's transactions.
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
