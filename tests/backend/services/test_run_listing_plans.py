"""What the database does with the runs list's queries, at a few thousand runs with the statistics a
server makes: the page read down the sort's index (not every match sorted), and the config keys'
expression indexes matched by the filter's own expressions (on SQLite the indexed keys' paths written
in, on PostgreSQL bound; the values bound on both)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from backend import statistics
from backend.models import INDEXED_CONFIG_KEYS
from backend.services import run_listing
from bench.runs_filter_data import seed_tricklab
from tests.testlib.plans import plan

RUNS = 3000
# bench.runs_filter's filtered query (that module imports the benches' torch helpers).
FILTER = 'config.tricks.mixup_alpha > 0 and config.schedule.name = "cosine" and peak.valid_top1 >= 60'
VALUES = {"number": "0", "string": '"x"'}


@pytest.fixture
def seeded(database_url, make_settings, make_database):
    database = make_database(make_settings(database_url))
    seed_tricklab(database_url, start=0, stop=RUNS, epochs=1)  # PostgreSQL's statistics made too (ANALYZE)
    statistics.refresh(database)  # SQLite's, as the server makes them at start
    return database


def statements(session, filter_text: str, sort: str = "-peak.valid_top1"):
    found = run_listing.list_statements(
        session=session,
        where=run_listing.Where(filter_text=filter_text),
        order=run_listing.Sort.of(sort),
        cursor=None,
        skip=0,
        limit=100,
    )
    assert found is not None
    return found


def test_the_filtered_page_is_read_down_the_sort_index_and_config_keys_from_theirs(seeded):
    with seeded.session() as session:
        count, page = statements(session, FILTER)
        page_plan = plan(session, page)
        if session.get_bind().dialect.name == "sqlite":
            # Not the archive index (nearly every run is unarchived) and a sort of every match.
            assert "ix_runs_sort_peak_valid_top1" in page_plan and "TEMP B-TREE" not in page_plan, page_plan
        else:
            # No scan of every run: down the sort's index, or the matches of a config key's (the keys'
            # index statistics tell the planner how few match; json, unindexed, got a guess of 0.5 %).
            assert "Seq Scan" not in page_plan and "Index" in page_plan, page_plan
        runs, matches, _ = run_listing.list_runs(
            session=session, where=run_listing.Where(filter_text=FILTER), sort="-peak.valid_top1"
        )
        assert len(runs) == 100 and matches > 100
        peaks = [run.peak_valid_top1 or 0.0 for run in runs]
        assert peaks == sorted(peaks, reverse=True)
        if session.get_bind().dialect.name == "sqlite":
            # A handful of matches: the key's index, not every run's JSON read (twice, count and page).
            for statement in statements(session, "config.seed = 7"):
                assert "USING INDEX ix_runs_config_seed" in plan(session, statement)
        else:
            session.execute(text("SET LOCAL enable_seqscan = off"))  # a few thousand rows: it might scan them all
        for keys, kind in INDEXED_CONFIG_KEYS.items():
            count, _ = statements(session, f"config.{'.'.join(keys)} = {VALUES[kind]}")
            name = f"ix_runs_config_{'_'.join(keys)}"
            assert name in forced_plan(session, count, name), count


def forced_plan(session, statement, index: str) -> str:
    """The plan, on SQLite with the index named (INDEXED BY: an error where its expression does not match
    the query's); PostgreSQL's as it is."""
    if session.get_bind().dialect.name != "sqlite":
        return plan(session, statement)
    compiled = statement.compile(dialect=session.get_bind().dialect)
    forced = str(compiled).replace("FROM runs", f"FROM runs INDEXED BY {index}", 1)
    values = tuple(compiled.params[name] for name in compiled.positiontup or ())
    rows = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {forced}", values)
    return "\n".join(str(row) for row in rows)
