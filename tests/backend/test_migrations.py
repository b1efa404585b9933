from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from backend import migrate
from backend.db import Database
from backend.models import Base, utcnow


def test_upgrade_head_matches_the_models_and_downgrades_to_nothing(database_url):
    database = Database(database_url)
    try:
        migrate.upgrade(database)
        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert (
                context.get_current_revision()
                == ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
            )
        migrate.upgrade(database)  # at head already: nothing to do
        migrate.downgrade(database, "base")
        assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
    finally:
        database.dispose()


def test_revision_files_are_named_by_date_and_slug():
    names = [path.name for path in migrate.MIGRATIONS.joinpath("versions").glob("*.py")]
    assert names and all(name[:16].replace("_", "").replace("-", "").isdigit() and "-" in name for name in names)


def test_studies_created_before_their_estimate_was_kept_have_none(database_url):
    database = Database(database_url)
    try:
        migrate.upgrade(database, "2026_12_01_run_kind")
        with database.engine.begin() as connection:
            connection.execute(
                text("INSERT INTO studies (name, created_at, spec) VALUES ('old', :now, '{}')"), {"now": utcnow()}
            )
        migrate.upgrade(database)
        with database.engine.connect() as connection:
            kept = connection.execute(text("SELECT name, estimated_seconds, estimate_basis FROM studies")).one()
        assert tuple(kept) == ("old", None, None)
        migrate.downgrade(database, "2026_12_01_run_kind")
        columns = {column["name"] for column in inspect(database.engine).get_columns("studies")}
        assert "estimated_seconds" not in columns and "estimate_basis" not in columns
    finally:
        database.dispose()
