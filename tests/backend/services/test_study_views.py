"""A study's table, CSV and curves, read back by the study views from results written by hand."""

import csv
import io

import pytest
from scipy import stats as scipy_stats
from study_helpers import SEED_STUDY, TINY, create

from backend.models import EpochMetric
from backend.reports import study as study_report
from backend.reports.stats import ONE_SEED
from backend.services import studies, study_views

pytestmark = pytest.mark.usefixtures("imagenet_cache")


@pytest.mark.filterwarnings("ignore:Precision loss occurred")  # SciPy's remark on a group without spread
def test_the_table_gives_mean_std_and_welch_interval_per_group(store):
    study = create(store, switches={"cosine": True, "label_smoothing": [0, 0.1]}, seeds=3, **TINY)
    results = {
        "base": [50.0, 52.0, 51.0],
        "+LS": [60.0, 61.5, 59.0],
        "+Cosine": [50.5, 52.5, 49.0],
        "+Cosine +LS": [58.0, 58.0, 58.0],
    }
    for group in study.groups:
        for member, value in zip(group.runs, results[group.key], strict=True):
            store.finish([member.run_id], valid=(value, 100.0), test_top1=value / 2, test_top5=90.0)
    with store.db.session() as session:
        study_row = studies.get_study(session=session, study_id=study.id)
        table = study_views.study_table(session=session, study=study_row)
        test_table = study_views.study_table(session=session, study=study_row, metric="test")
    rows = {row.group: row for row in table.data}
    assert [row.group for row in table.data] == ["base", "+LS", "+Cosine", "+Cosine +LS"]
    assert rows["base"].is_baseline and rows["base"].top1.verdict == "baseline"
    for key in ("+LS", "+Cosine", "+Cosine +LS"):
        top1 = rows[key].top1
        expected = scipy_stats.ttest_ind(results[key], results["base"], equal_var=False)
        interval = expected.confidence_interval(0.95)
        assert top1.values == results[key] and top1.n == 3 and rows[key].succeeded == 3
        assert top1.p_value == pytest.approx(expected.pvalue, rel=1e-9)
        assert (top1.ci_low, top1.ci_high) == (pytest.approx(interval.low), pytest.approx(interval.high))
    assert rows["+LS"].top1.verdict == "helped"
    assert rows["+Cosine"].top1.verdict == "within noise" and rows["+Cosine"].top1.within_noise
    assert rows["+Cosine +LS"].top1.std == 0.0 and rows["+Cosine +LS"].top1.verdict == "helped"
    # Every top-5 is 100: no spread anywhere, so no interval rather than a zero-width one.
    assert rows["+LS"].top5.verdict == "no spread across seeds: no interval"
    assert {row.group: row.top1.mean for row in test_table.data}["+LS"] == pytest.approx(sum(results["+LS"]) / 6)
    assert all(row.report is None for row in table.data)  # a grid has no report numbers


def test_the_seed_preset_table_carries_the_reports_numbers_and_csv(store):
    study = create(store, preset="seed", **TINY)
    ids = {group.key: group.runs[0].run_id for group in study.groups}
    store.finish([ids["base"]], valid=(40.0, 80.0))
    store.finish([ids["a"]], valid=(41.0, 81.0))
    with store.db.session() as session:
        table = study_views.study_table(session=session, study=studies.get_study(session=session, study_id=study.id))
    rows = {row.group: row for row in table.data}
    assert (rows["base"].report, rows["a"].report, rows["d1"].report) == ("78.53", "79.13 (+0.60p)", "5.27 (−73.26p)")
    assert (rows["a"].report_top1, rows["a"].report_top5) == (79.13, 95.77)
    assert rows["a"].top1.delta == 1.0 and rows["a"].top1.verdict == "1 seed: no interval"
    assert rows["b"].top1.verdict == "no result yet"
    # One seed per group: the table says once why no delta has an interval, the rows give the deltas alone.
    assert table.note == study_report.TABLE_NOTES[ONE_SEED]
    assert (rows["a"].top1.delta_text, rows["a"].top5.delta_text, rows["b"].top1.delta_text) == (
        "+1.00p",
        "+1.00p",
        "–",
    )

    parsed = list(csv.DictReader(io.StringIO(study_report.table_csv(table))))
    assert [row["group"] for row in parsed] == list(SEED_STUDY)
    a = next(row for row in parsed if row["group"] == "a")
    assert (a["top1_mean"], a["top1_delta"], a["top1_verdict"], a["report"], a["report_top1"]) == (
        "41.0",
        "1.0",
        "1 seed: no interval",
        "79.13 (+0.60p)",
        "79.13",
    )
    assert a["top1_ci_low"] == "" and a["top1_p_value"] == ""


@pytest.mark.filterwarnings("ignore:Precision loss occurred")
def test_a_row_without_an_interval_among_rows_with_one_says_why_itself(store):
    study = create(store, switches={"cosine": True, "label_smoothing": [0, 0.1]}, seeds=2, **TINY)
    results = {"base": [(50.0, 80.0), (52.0, 83.0)], "+LS": [(60.0, 90.0), (61.5, 92.0)], "+Cosine": [(53.0, 81.0)]}
    for group in study.groups:
        for member, valid in zip(group.runs, results.get(group.key, []), strict=False):
            store.finish([member.run_id], valid=valid)
    with store.db.session() as session:
        table = study_views.study_table(session=session, study=studies.get_study(session=session, study_id=study.id))
    rows = {row.group: row for row in table.data}
    assert table.note is None
    assert rows["+LS"].top1.delta_text.startswith("+9.75p [")
    assert rows["+Cosine"].top1.delta_text == "+2.00p (1 seed: no interval)"
    assert rows["+Cosine +LS"].top1.delta_text == "–"


def test_a_delta_reads_as_on_the_compare_page(store):
    """87.5 against 84.375: +3.125 in the table and its CSV, "+3.13p" in its text, as compare writes it."""
    study = create(store, preset="seed", **TINY)
    ids = {group.key: group.runs[0].run_id for group in study.groups}
    store.finish([ids["base"]], valid=(84.375, 80.0))
    store.finish([ids["a"]], valid=(87.5, 80.001))
    with store.db.session() as session:
        table = study_views.study_table(session=session, study=studies.get_study(session=session, study_id=study.id))
    a = next(row for row in table.data if row.group == "a")
    # One seed: the table says once that no delta has an interval, the rows do not repeat it.
    assert table.note is not None and table.note.startswith("No delta has an interval: each compares a single seed")
    assert (a.top1.delta, a.top1.delta_text) == (3.125, "+3.13p")
    assert a.top5.delta_text == "+0.00p"  # +0.001
    parsed = next(row for row in csv.DictReader(io.StringIO(study_report.table_csv(table))) if row["group"] == "a")
    assert parsed["top1_delta"] == "3.125"


def test_csv_group_names_stay_as_typed_and_formulas_stay_text(store):
    study = create(store, switches={"cosine": True, "label_smoothing": [0, 0.1]}, **TINY)
    with store.db.session() as session:
        table = study_views.study_table(session=session, study=studies.get_study(session=session, study_id=study.id))
    parsed = list(csv.DictReader(io.StringIO(study_report.table_csv(table))))
    assert [row["group"] for row in parsed] == ["base", "+LS", "+Cosine", "+Cosine +LS"]
    assert parsed[3]["tricks"] == "ResNet18 from scratch +Cosine +LS"


def test_curves_are_mean_and_std_per_group_and_epoch(store):
    study = create(store, switches={"cosine": True}, seeds=2, **{**TINY, "epochs": 2})
    base_runs = [run.run_id for run in study.groups[0].runs]
    with store.db.transaction(write=True) as session:
        for run_id, offset in zip(base_runs, (0.0, 2.0), strict=True):
            for epoch in (1, 2):
                session.add(
                    EpochMetric(
                        run_id=run_id,
                        epoch=epoch,
                        attempt=1,
                        train_loss=1.0 + offset,
                        valid_top1=10.0 * epoch + offset,
                        valid_top5=50.0,
                        lr=0.001,
                    )
                )
    with store.db.session() as session:
        curves = study_views.study_curves(session=session, study=studies.get_study(session=session, study_id=study.id))
    base, cosine = curves.data
    assert curves.epochs == 2 and base.is_baseline and not cosine.is_baseline
    assert base.valid_top1.epoch == [1, 2] and base.valid_top1.mean == [11.0, 21.0]
    assert base.valid_top1.std == [pytest.approx(2**0.5)] * 2 and base.valid_top1.n == [2, 2]
    assert base.lr.std == [0.0, 0.0] and cosine.train_loss.epoch == []
