"""Alembic environment: backend's metadata, the URL from settings or from the caller's connection."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from backend.models import Base

config = context.config
target_metadata = Base.metadata

# Only the alembic command line configures logging; the app and tests keep their own.
if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _options(dialect_name: str) -> dict:
    # Batch mode lets later revisions alter SQLite tables (it has almost no ALTER TABLE).
    return {"target_metadata": target_metadata, "compare_type": True, "render_as_batch": dialect_name == "sqlite"}


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or _settings_url()
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_options(url.partition(":")[0].partition("+")[0]),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from backend.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or _settings_url())
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _run(connection) -> None:
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def _settings_url() -> str:
    from backend.settings import Settings

    return Settings().database_url


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
