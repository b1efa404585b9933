"""Peak/final epoch choice, the default baseline, deltas in points and the CSV, as the compare table shows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from testlib.presets import preset_config

from backend.reports.compare import compare_rows, default_baseline, pick_epoch, rows_to_csv
from backend.reports.numbers import with_delta
from trainer.config import RunConfig

START = datetime(2026, 12, 1, tzinfo=UTC)


def test_delta_text():
    assert with_delta(81.55, 3.02) == "81.55 (+3.02p)"
    assert with_delta(78.0, -0.6) == "78.00 (−0.60p)"
    assert with_delta(78.53, None) == "78.53"
    assert with_delta(None, None) == "–"


def _epoch(run_id, epoch, top1, top5):
    return SimpleNamespace(run_id=run_id, epoch=epoch, valid_top1=top1, valid_top5=top5)


def _run(run_id, config, status="succeeded", *, created=None):
    return SimpleNamespace(
        id=run_id,
        name=f"run {run_id}",
        status=status,
        config=config,
        created_at=START + timedelta(minutes=run_id if created is None else created),
        epochs=config.epochs,
        seconds_per_epoch=12.5,
        images_per_s=180.0,
        data_wait_share=0.05,
        data_wait_hint=None,
        test_top1=70.0,
        test_top5=90.0,
        checkpoint_epoch=2,
    )


def test_the_peak_epoch_is_the_highest_valid_top1_earliest_on_ties():
    metrics = [_epoch(1, 1, 50.0, 80.0), _epoch(1, 2, 60.0, 85.0), _epoch(1, 3, 60.0, 90.0), _epoch(1, 4, 55.0, 91.0)]
    peak, final = pick_epoch(metrics, "peak"), pick_epoch(metrics, "final")
    assert peak is not None and peak.epoch == 2
    assert final is not None and final.epoch == 4
    assert pick_epoch([], "peak") is None


def test_compare_rows_deltas_against_the_chosen_baseline():
    runs = [_run(1, RunConfig()), _run(2, preset_config("b")), _run(3, preset_config("a"), "running")]
    metrics = [
        _epoch(1, 1, 70.0, 90.0),
        _epoch(1, 2, 78.53, 93.82),
        _epoch(2, 1, 81.55, 96.17),
        _epoch(2, 2, 80.0, 96.5),
    ]
    peak = compare_rows(runs, metrics, baseline_id=1, mode="peak")
    assert [row.tricks for row in peak] == ["base", "+LS", "+Cosine"]
    assert peak[0].top1_text == "78.53" and peak[0].is_baseline
    assert peak[1].top1_text == "81.55 (+3.02p)" and peak[1].top5_text == "96.17 (+2.35p)"
    assert peak[2].top1_text == "–" and peak[2].epoch is None

    assert (peak[1].checkpoint_epoch, peak[1].test_top1, peak[1].seed) == (2, 70.0, 1234)
    assert peak[0].lr_groups == "layer4 and fc (lr/2)"

    final = compare_rows(runs, metrics, baseline_id=2, mode="final")
    assert final[0].top1_text == "78.53 (−1.47p)" and final[1].is_baseline
    csv_text = rows_to_csv(final)
    assert csv_text.splitlines()[0].startswith("run_id,name,tricks,seed,status,epoch,top1,top1_delta")
    # The CSV holds the unrounded figures, the delta too: a spreadsheet rounds it as the texts do.
    assert csv_text.splitlines()[1].startswith(f"1,run 1,base,1234,succeeded,2,78.53,{78.53 - 80.0!r},93.82")
    assert csv_text.splitlines()[2].startswith("2,run 2,+LS,1234,succeeded,")  # not a formula in a spreadsheet


def test_a_delta_is_the_unrounded_difference_in_the_table_and_its_csv():
    """87.5 against 84.375 is +3.125: "+3.13p", as the study table writes it (not 87.50 - 84.38 = +3.12)."""
    runs = [_run(1, RunConfig()), _run(2, preset_config("b"))]
    rows = compare_rows(runs, [_epoch(1, 1, 84.375, 90.0), _epoch(2, 1, 87.5, 90.0)], baseline_id=1, mode="peak")
    assert (rows[1].top1_delta, rows[1].top1_text) == (3.125, "87.50 (+3.13p)")
    assert (rows[1].top5_delta, rows[1].top5_text) == (0.0, "90.00 (+0.00p)")
    assert rows_to_csv(rows).splitlines()[2].startswith("2,run 2,+LS,1234,succeeded,1,87.5,3.125,90.0,0.0,")


def test_the_default_baseline_has_the_fewest_tricks_ties_going_to_the_oldest():
    plain = _run(5, RunConfig(name="demo"), created=50)
    tricked = _run(2, preset_config("e"), created=10)
    # The plain run, not the first id (#2) nor the oldest run.
    assert default_baseline([tricked, plain]) == default_baseline([plain, tricked]) == 5
    older = _run(9, RunConfig(name="twin", seed=7), created=40)
    assert default_baseline([tricked, plain, older]) == 9
    # A teacher of another compared run is its students' source, not their baseline.
    teacher = _run(1, preset_config("T"), created=0)
    student = _run(3, preset_config("c", teacher=1), created=20)
    assert default_baseline([student, teacher, plain]) == 5
    assert default_baseline([student, teacher]) == 3
