"""The runs filter language, parsed and compiled to SQL, against a table of expressions and the runs
each must find, on SQLite and PostgreSQL; the list's sort, keyset pages and seed groups."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from backend.models import EpochMetric, Run, RunStatus, RunTag
from backend.services import run_listing
from backend.services.errors import InvalidParameter
from backend.services.filter_language import MAX_DEPTH, MAX_IN_VALUES, MAX_LENGTH, FilterError, parse_filter
from backend.services.filter_sql import compile_filter

# Hand-made rows: configs hold what a stored config may (a string where a number is expected, a
# null, a missing key), so each guard has something to refuse.
RUNS: dict[str, dict[str, Any]] = {
    "cosine-a": {
        "config": {
            "tricks": {"mixup_alpha": 0.2, "label_smoothing": 0.1},
            "optim": {"schedule": "cosine", "lr": 0.1},
            "flag": True,
            "seed": 1,
        },
        "status": RunStatus.succeeded,
        "peak_valid_top1": 81.5,
        "test_top1": 80.0,
        "created_by": "alice",
        "configuration_hash": "c1",
        "notes": "**why**: the *a* row, 100% cosine",
    },
    "Cosine-b": {
        "config": {
            "tricks": {"mixup_alpha": 0.2},
            "optim": {"schedule": "Cosine", "lr": 0.1},
            "seed": 2,
            "flag": False,
        },
        "status": RunStatus.succeeded,
        "peak_valid_top1": 79.0,
        "test_top1": 78.0,
        "configuration_hash": "c1",
    },
    "step": {
        "config": {"tricks": {"mixup_alpha": 0}, "optim": {"schedule": "step", "lr": 0.05}, "seed": 1},
        "status": RunStatus.failed,
        "configuration_hash": "c2",
        "notes": "diverged at epoch 3",
    },
    "weird": {
        "config": {"tricks": {"mixup_alpha": "abc"}, "optim": {"lr": "0.1"}, "seed": 1},
        "status": RunStatus.queued,
        "configuration_hash": "c3",
    },
    "nullish": {
        "config": {"tricks": {"mixup_alpha": None}, "note": "100%_done", "seed": 1},
        "status": RunStatus.running,
        "configuration_hash": "c4",
    },
}
ALL = set(RUNS)
# Tags live in their own table (run_tags), several per run.
TAGS = {"cosine-a": ["keep", "ablation"], "Cosine-b": ["keep"], "step": ["try"]}

CASES = [
    # A string never compares as 0 (SQLite would rank "abc" above every number), "0.1" is no 0.1.
    ("config.tricks.mixup_alpha > 0", {"cosine-a", "Cosine-b"}),
    ("config.tricks.mixup_alpha >= 0", {"cosine-a", "Cosine-b", "step"}),
    ("config.tricks.mixup_alpha < 1000", {"cosine-a", "Cosine-b", "step"}),
    ('config.tricks.mixup_alpha = "abc"', {"weird"}),
    ("config.optim.lr = 0.1", {"cosine-a", "Cosine-b"}),
    ('config.optim.lr = "0.1"', {"weird"}),
    ("not config.tricks.mixup_alpha > 0", {"step", "weird", "nullish"}),
    ("config.tricks.mixup_alpha is null", {"nullish"}),
    ("config.tricks.mixup_alpha = null", {"nullish"}),
    ("config.tricks.label_smoothing is null", ALL - {"cosine-a"}),
    ("config.tricks.label_smoothing exists", {"cosine-a"}),
    ("config.tricks.mixup_alpha exists", ALL),
    ("config.flag = true", {"cosine-a"}),
    ("config.flag != TRUE", {"Cosine-b"}),
    ('config.optim.schedule like "cos%"', {"cosine-a"}),
    ('config.optim.schedule ilike "COS%"', {"cosine-a", "Cosine-b"}),
    ('config.optim.schedule in ("step", "cosine", 3)', {"cosine-a", "step"}),
    ('config.optim.schedule not in ("step")', {"cosine-a", "Cosine-b"}),
    ('config.optim.schedule not like "c%"', {"Cosine-b", "step"}),
    (r'config.note like "100\\%\\_d%"', {"nullish"}),
    (r'config.note like "100\\%x%"', set()),
    ('name ilike "%COSINE%" or status = "failed"', {"cosine-a", "Cosine-b", "step"}),
    ('name like "cos%"', {"cosine-a"}),
    ("name like 'c_sine%'", {"cosine-a"}),
    ('name = "weird" OR name = "step"', {"weird", "step"}),
    ("peak.valid_top1 >= 80", {"cosine-a"}),
    ("not peak.valid_top1 >= 80", ALL - {"cosine-a"}),
    ("peak.valid_top1 exists", {"cosine-a", "Cosine-b"}),
    ("test.top1 < 79", {"Cosine-b"}),
    ('status in ("queued", "running")', {"weird", "nullish"}),
    ('status != "succeeded" and not (status = "failed")', {"weird", "nullish"}),
    ('created_by = "alice"', {"cosine-a"}),
    ("created_by is null", ALL - {"cosine-a"}),
    ("created_by is not null", {"cosine-a"}),
    ("final.valid_top1 = 50", {"nullish"}),
    ("final.epoch >= 2 and final.valid_top1 < 60", {"nullish"}),
    ('id > 0 and kind = "training"', ALL),
    ('created_at >= "2000-01-01" and created_at < "2999-01-01T00:00Z"', ALL),
    ('configuration = "c1"', {"cosine-a", "Cosine-b"}),
    ('config.tricks.mixup_alpha > 0 and (name ilike "%b" or peak.valid_top1 >= 80)', {"cosine-a", "Cosine-b"}),
    # SQL inside a string is a string.
    ('name = "x\'; DROP TABLE runs; --"', set()),
    ("name = 'x\\' OR 1=1 --'", set()),
    ("config.`tricks`.mixup_alpha > 0.1e0", {"cosine-a", "Cosine-b"}),
    # A tag condition asks whether the run carries a matching tag; negated, that it carries none.
    ('tag = "keep"', {"cosine-a", "Cosine-b"}),
    ('tag != "keep"', {"step", "weird", "nullish"}),
    ('not tag = "keep"', {"step", "weird", "nullish"}),
    ('tag = "keep" and tag = "ablation"', {"cosine-a"}),
    ('tag in ("try", "ablation")', {"cosine-a", "step"}),
    ('tag not in ("keep")', {"step", "weird", "nullish"}),
    ('tag like "k%"', {"cosine-a", "Cosine-b"}),
    ('tag not like "k%"', {"step", "weird", "nullish"}),
    ("tag exists", {"cosine-a", "Cosine-b", "step"}),
    ("tags exists", {"cosine-a", "Cosine-b", "step"}),
    ("tag is null", {"weird", "nullish"}),
    ("tag = null", {"weird", "nullish"}),
    ("tag is not null", {"cosine-a", "Cosine-b", "step"}),
    ('tag = "nope"', set()),
    ('tag = "keep" and status = "succeeded" and peak.valid_top1 >= 80', {"cosine-a"}),
    ('notes ilike "%COSINE%"', {"cosine-a"}),
    (r'notes like "%100\\%%"', {"cosine-a"}),
    ('notes = ""', {"Cosine-b", "weird", "nullish"}),
    ('notes != "" and not notes like "%cosine%"', {"step"}),
]


@pytest.fixture
def db(database_url, make_settings, make_database):
    database = make_database(make_settings(database_url))
    with database.session(write=True) as session:
        for name, values in RUNS.items():
            session.add(Run(name=name, config_hash=name, **values))
        session.flush()
        ids = dict(session.execute(select(Run.name, Run.id)).all())
        session.add_all([RunTag(run_id=ids[name], tag=tag) for name, tags in TAGS.items() for tag in tags])
        nullish = session.scalars(select(Run.id).where(Run.name == "nullish")).one()
        session.add_all(
            [
                EpochMetric(run_id=nullish, epoch=1, attempt=1, valid_top1=40.0),
                EpochMetric(run_id=nullish, epoch=2, attempt=1, valid_top1=50.0),
            ]
        )
        session.commit()
    return database


def found(db, text: str) -> set[str]:
    with db.session() as session:
        runs, count, _ = run_listing.list_runs(session=session, where=run_listing.Where(filter_text=text), limit=1000)
    assert count == len(runs)
    return {run.name for run in runs}


def test_each_expression_finds_its_runs_with_bound_parameters_only(db):
    failures = {text: (found(db, text), expected) for text, expected in CASES if found(db, text) != expected}
    assert failures == {}
    with db.session() as session:
        runs = session.scalars(select(Run)).all()
    assert len(runs) == len(RUNS)  # the DROP TABLE was a string


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_values_never_reach_the_sql_text(dialect):
    from sqlalchemy.dialects import postgresql, sqlite

    node = parse_filter('name = "sneaky\' --" and config.optim.momentum > 0.123 and config.tricks.kd exists')
    condition = compile_filter(node, dialect=dialect)
    assert condition is not None
    text = str(condition.compile(dialect=(sqlite if dialect == "sqlite" else postgresql).dialect()))
    assert "sneaky" not in text and "0.123" not in text and "optim" not in text and "kd" not in text
    # A key SQLite indexes (a fixed list, not the user's text) has its path written in there, so that
    # the index's expression and the query's match; its value stays bound.
    condition = compile_filter(parse_filter("config.optim.lr > 0.123"), dialect=dialect)
    assert condition is not None
    text = str(condition.compile(dialect=(sqlite if dialect == "sqlite" else postgresql).dialect()))
    assert "0.123" not in text and ("'$.optim.lr'" in text) == (dialect == "sqlite")


REFUSED = [
    ("config.tricks.mixup_alpha >", "ends too soon: expected a number"),
    ("status = = 1", "column 10: unexpected '='"),
    ("name ~ 'x'", "column 6: unexpected '~'"),
    ("peak.valid_top1 >= NaN", "column 20: unexpected 'NaN'"),
    ("peak.valid_top1 >= inf", "unexpected 'inf'"),
    ("peak.valid_top1 >= 1e999", "no finite number"),
    ("peak.valid_top1 >= -1e999", "no finite number"),
    ("bogus = 1", "unknown field 'bogus'"),
    ("peak.top1 = 1", "unknown field 'peak.top1'"),
    ("best.valid_top1 = 1", "unknown field"),
    ('status = "bogus"', "status is one of queued"),
    ('status > "queued"', "compares with = or != only"),
    ("name > 3", "name compares with a quoted string"),
    ('peak.valid_top1 like "8%"', "like and ilike take a text field"),
    ('created_at > "yesterday"', "no ISO date"),
    ("tag > 3", "tag compares with a quoted string"),
    ("tag.x = 1", "unknown field 'tag.x'"),
    ("notes < 1", "notes compares with a quoted string"),
    ("config = 1", "name a key"),
    ("config.`a-b` = 1", "letters, digits and _ only"),
    ('name = "a\x00b"', "control characters"),
    ("x" * (MAX_LENGTH + 1), f"at most {MAX_LENGTH} characters"),
    ("not " * (MAX_DEPTH + 1) + "id = 1", f"at most {MAX_DEPTH} levels"),
    ("not " * MAX_DEPTH + "id = 1", None),
    ("(id = 1 and " * (MAX_DEPTH + 1) + "id = 1" + ")" * (MAX_DEPTH + 1), f"at most {MAX_DEPTH} levels"),
    ("(" * 20 + "id = 1 and " * 1 + "(" * 20 + "id = 1" + ")" * 40, None),  # redundant parentheses: fine
    ("id in (" + ",".join(["1"] * (MAX_IN_VALUES + 1)) + ")", f"at most {MAX_IN_VALUES} values"),
    ("id = 1 or " * 150 + "id = 2", None),  # long but flat: an answer
    ("id = " + "9" * 300, None),  # 1e300: a float, compared as one
]


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_absurd_filters_are_refused_with_the_reason_or_answered(text, message):
    if message is None:
        for dialect in ("sqlite", "postgresql"):
            compile_filter(parse_filter(text), dialect=dialect)
        return
    with pytest.raises(FilterError) as refused:
        compile_filter(parse_filter(text), dialect="sqlite")
    assert message in str(refused.value)


def test_a_huge_integer_compares_as_a_float_rather_than_overflowing(db):
    assert found(db, "id < 99999999999999999999") == ALL
    assert found(db, "id < " + "9" * 300) == ALL
    assert found(db, "config.tricks.mixup_alpha < 99999999999999999999") == {"cosine-a", "Cosine-b", "step"}


def page_through(db, sort: str, limit: int) -> list[str]:
    names, cursor = [], None
    with db.session() as session:
        while True:
            runs, count, cursor = run_listing.list_runs(session=session, sort=sort, cursor=cursor, limit=limit)
            assert count == len(RUNS)
            names += [run.name for run in runs]
            if cursor is None:
                return names


@pytest.mark.parametrize("sort", ["-peak.valid_top1", "peak.valid_top1", "name", "-status", "created_at", "-id"])
def test_keyset_pages_follow_the_sort_without_gaps_or_repeats(db, sort):
    whole = page_through(db, sort, limit=100)
    assert page_through(db, sort, limit=2) == whole
    assert page_through(db, sort, limit=1) == whole
    if sort == "-peak.valid_top1":
        # A run without the figure sorts as the lowest; ties by id, newest first.
        assert whole[:2] == ["cosine-a", "Cosine-b"]
        assert whole[2:] == ["nullish", "weird", "step"]
    if sort == "name":
        assert whole == sorted(RUNS)


def test_a_cursor_of_another_sort_or_made_up_is_a_422_naming_it(db):
    with db.session() as session:
        _, _, cursor = run_listing.list_runs(session=session, sort="name", limit=1)
        for sort, bad in (("-id", cursor), ("name", "garbage!"), ("name", "W10=")):
            with pytest.raises(InvalidParameter) as refused:
                run_listing.list_runs(session=session, sort=sort, cursor=bad)
            assert refused.value.loc == ("query", "cursor")
        with pytest.raises(InvalidParameter) as refused:
            run_listing.list_runs(session=session, where=run_listing.Where(filter_text="id ="))
        assert refused.value.loc == ("query", "filter")


def test_seeds_of_one_configuration_group_into_one_row_with_mean_and_std(db):
    with db.session() as session:
        groups, count = run_listing.list_groups(session=session, sort="-peak.valid_top1")
        assert count == 4
        first = run_listing.public_group(groups[0])
        assert first.configuration == "c1" and first.count == 2 and sorted(first.seeds) == [1, 2]
        assert first.peak_valid_top1.mean == pytest.approx(80.25)
        assert first.peak_valid_top1.std == pytest.approx(1.76776695)
        assert first.statuses == {"succeeded": 2}
        filtered, count = run_listing.list_groups(
            session=session, where=run_listing.Where(filter_text="peak.valid_top1 > 80")
        )
        assert count == 1 and run_listing.public_group(filtered[0]).count == 1


# Words a filter is made of, joined at random: most joins are nonsense, many parse, some run.
WORDS = [
    "and", "or", "not", "(", ")", ",", "=", "!=", "<", ">=", "in", "like", "ilike", "is", "null", "exists",
    "true", "1", "-2.5e3", "1e999", '"x"', "'%a_'", '"\\\\"', "name", "status", "peak.valid_top1", "final.lr",
    "config.optim.lr", "config.tricks.mixup_alpha", "config.`a b`", "tag", '"succeeded"', "NaN", ";", "--", "`",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=80), st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)))
def test_any_text_is_refused_with_a_filter_error_or_runs(db, text):
    try:
        condition = compile_filter(parse_filter(text), dialect=db.engine.dialect.name)
    except FilterError:
        return
    if condition is not None:
        with db.session() as session:
            session.scalars(select(Run.id).where(condition)).all()


@pytest.mark.parametrize(
    ("sort", "index"),
    [("peak.valid_top1", "ix_runs_sort_peak_valid_top1"), ("test.top1", "ix_runs_sort_test_top1")],
)
def test_the_sorted_list_reads_the_index_built_from_its_own_expression(db, sort, index):
    key = run_listing.SORTS[sort]
    statement = select(Run.id).order_by(key.desc(), Run.id.desc()).limit(10)
    with db.session() as session:
        dialect = session.get_bind().dialect
        sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        if dialect.name == "sqlite":
            plan = " ".join(str(row) for row in session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
        else:
            # Five rows: PostgreSQL would rather scan them all; asked not to, it shows what it can use.
            session.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(str(row) for row in session.execute(text(f"EXPLAIN {sql}")))
    assert index in plan, plan
