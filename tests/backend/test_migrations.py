from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from backend import migrate
from backend.db import Database
from backend.models import CONFIG_INDEXES, Base, utcnow

CONFIG_INDEX_NAMES = {index.name for index in CONFIG_INDEXES["sqlite"]}


def _comparable(_object, name, type_, _reflected, _compare_to) -> bool:
    # Alembic renders the config indexes' expressions with their bound paths as placeholders, so it
    # cannot compare them with the database's; that the migration made them is checked by name instead.
    return not (type_ == "index" and name in CONFIG_INDEX_NAMES)


def test_upgrade_head_matches_the_models_and_downgrades_to_nothing(empty_database_url):
    database = Database(empty_database_url)
    try:
        migrate.upgrade(database)
        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": _comparable})
            assert compare_metadata(context, Base.metadata) == []
            if connection.dialect.name == "sqlite":  # SQLAlchemy reflects no expression index there
                names = set(connection.scalars(text("SELECT name FROM sqlite_master WHERE tbl_name = 'runs'")))
            else:
                names = {index["name"] for index in inspect(connection).get_indexes("runs")}
            assert names >= CONFIG_INDEX_NAMES
            assert (
                context.get_current_revision()
                == ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
            )
        migrate.upgrade(database)  # at head already: nothing to do
        migrate.downgrade(database, "base")
        assert set(sa.inspect(database.engine).get_table_names()) <= {"alembic_version"}
    finally:
        database.dispose()


def test_revision_files_are_named_by_date_and_slug():
    names = [path.name for path in migrate.MIGRATIONS.joinpath("versions").glob("*.py")]
    assert names and all(name[:16].replace("_", "").replace("-", "").isdigit() and "-" in name for name in names)


def test_studies_created_before_their_estimate_was_kept_have_none(empty_database_url):
    database = Database(empty_database_url)
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


def test_checkpoint_and_peak_keep_a_stored_runs_figures(empty_database_url):
    """best_* becomes checkpoint_*, max_valid_* peak_*, and the peak epoch and its top-5 are read from the
    epoch rows (the highest top-5, 95.0 at epoch 3, was max_valid_top5; the peak epoch 2 has 93.0)."""
    database = Database(empty_database_url)
    runs, epochs = (
        sa.table("runs", *map(sa.column, RUN_ROW)),
        sa.table("epoch_metrics", *map(sa.column, [*EPOCH_ROW, "id", "epoch", "valid_top1", "valid_top5"])),
    )
    try:
        migrate.upgrade(database, "2026_12_01_run_kind")
        with database.engine.begin() as connection:
            connection.execute(sa.insert(runs).values(RUN_ROW))
            connection.execute(
                sa.insert(epochs),
                [
                    {**EPOCH_ROW, "id": epoch, "epoch": epoch, "valid_top1": top1, "valid_top5": top5}
                    for epoch, top1, top5 in ((1, 50.0, 90.0), (2, 62.5, 93.0), (3, 62.5, 95.0), (4, 60.0, 94.0))
                ],
            )
        migrate.upgrade(database)
        with database.engine.connect() as connection:
            row = connection.execute(sa.text("SELECT * FROM runs")).mappings().one()
            assert connection.execute(sa.text("SELECT COUNT(*) FROM epoch_metrics")).scalar_one() == 4
        assert {key: row[key] for key in ("checkpoint_epoch", "checkpoint_valid_loss", "checkpoint_valid_top1")} == {
            "checkpoint_epoch": 4,
            "checkpoint_valid_loss": 0.75,
            "checkpoint_valid_top1": 60.0,
        }
        assert (row["checkpoint_valid_top5"], row["test_top1"]) == (94.0, 58.25)
        assert (row["peak_epoch"], row["peak_valid_top1"], row["peak_valid_top5"]) == (2, 62.5, 93.0)
        assert not {"best_epoch", "max_valid_top1"} & set(row.keys())

        migrate.downgrade(database, "2026_12_01_run_kind")
        with database.engine.connect() as connection:
            old = connection.execute(sa.text("SELECT * FROM runs")).mappings().one()
        result = [key for key in RUN_ROW if key.startswith(("best_", "max_", "test_"))]
        assert {key: old[key] for key in result} == {key: RUN_ROW[key] for key in result}
    finally:
        database.dispose()


def test_organise_adds_notes_tags_and_archive_without_touching_epoch_rows(empty_database_url):
    """A stored run gets empty notes, no tags and is not archived; its epoch rows stay (a batch copy
    of runs on SQLite would cascade-delete them), and the downgrade takes the new columns away."""
    database = Database(empty_database_url)
    runs, epochs = (
        sa.table("runs", *map(sa.column, RUN_ROW)),
        sa.table("epoch_metrics", *map(sa.column, [*EPOCH_ROW, "id", "epoch"])),
    )
    try:
        migrate.upgrade(database, "2026_12_01_run_kind")
        with database.engine.begin() as connection:
            connection.execute(sa.insert(runs).values(RUN_ROW))
            connection.execute(sa.insert(epochs), [{**EPOCH_ROW, "id": n, "epoch": n} for n in (1, 2)])
        migrate.upgrade(database)
        with database.engine.begin() as connection:
            row = connection.execute(sa.text("SELECT * FROM runs")).mappings().one()
            assert (row["notes"], row["archived_at"], row["updated_by"], row["updated_at"]) == ("", None, None, None)
            assert connection.execute(sa.text("SELECT COUNT(*) FROM epoch_metrics")).scalar_one() == 2
            connection.execute(sa.text("INSERT INTO run_tags (run_id, tag) VALUES (1, 'keep')"))
        migrate.downgrade(database, "2026_12_07_checkpoint_peak")
        assert "run_tags" not in inspect(database.engine).get_table_names()
        assert "notes" not in {column["name"] for column in inspect(database.engine).get_columns("runs")}
        with database.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT COUNT(*) FROM epoch_metrics")).scalar_one() == 2
    finally:
        database.dispose()


# A finished run as revision 2026_12_01_run_kind stored it, with its result.
RUN_ROW = {
    "id": 1,
    "name": "stored",
    "status": "succeeded",
    "priority": 0,
    "config": "{}",
    "config_hash": "0" * 64,
    "attempt": 1,
    "max_attempts": 1,
    "training_failures": 0,
    "infrastructure_failures": 0,
    "cancel_requested": False,
    "start_epoch": 0,
    "created_at": datetime(2026, 12, 1, tzinfo=UTC),
    "test_top1": 58.25,
    "best_epoch": 4,
    "best_valid_loss": 0.75,
    "best_valid_top1": 60.0,
    "best_valid_top5": 94.0,
    "max_valid_top1": 62.5,
    "max_valid_top5": 95.0,
}
EPOCH_ROW = {"run_id": 1, "attempt": 1, "created_at": datetime(2026, 12, 1, tzinfo=UTC)}
