"""Trick summaries, best/final epoch choice and deltas in points, as the compare table shows them."""

from __future__ import annotations

from types import SimpleNamespace

from backend.reports.compare import compare_rows, pick_epoch, rows_to_csv, with_delta
from backend.reports.labels import trick_summary
from backend.services.teachers import teacher_choices
from trainer.config import RunConfig
from trainer.presets import get_preset


def test_trick_summary_names_tricks_in_the_reports_words():
    assert trick_summary(RunConfig()) == "base"
    assert trick_summary(get_preset("h").config(teacher=7)) == "+Cosine +LS +KD (teacher #7)"
    assert trick_summary(get_preset("T-LS").config()) == "ResNet152 +LS"
    assert trick_summary(get_preset("d2").config()) == "+Mixup α=0.2"
    assert trick_summary(get_preset("c").config(teacher="/runs/12")) == "+KD (teacher 12)"


def test_delta_text():
    assert with_delta(81.55, 3.02) == "81.55 (+3.02p)"
    assert with_delta(78.0, -0.6) == "78.00 (-0.60p)"
    assert with_delta(78.53, None) == "78.53"
    assert with_delta(None, None) == "–"


def _epoch(run_id, epoch, top1, top5):
    return SimpleNamespace(run_id=run_id, epoch=epoch, valid_top1=top1, valid_top5=top5)


def _run(run_id, config, status="succeeded"):
    return SimpleNamespace(
        id=run_id,
        name=f"run {run_id}",
        status=status,
        config=config.model_dump(mode="json"),
        epochs=config.epochs,
        seconds_per_epoch=12.5,
    )


def test_best_epoch_is_the_highest_valid_top1_earliest_on_ties():
    metrics = [_epoch(1, 1, 50.0, 80.0), _epoch(1, 2, 60.0, 85.0), _epoch(1, 3, 60.0, 90.0), _epoch(1, 4, 55.0, 91.0)]
    assert pick_epoch(metrics, "best").epoch == 2
    assert pick_epoch(metrics, "final").epoch == 4
    assert pick_epoch([], "best") is None


def test_compare_rows_deltas_against_the_chosen_baseline():
    runs = [_run(1, RunConfig()), _run(2, get_preset("b").config()), _run(3, get_preset("a").config(), "running")]
    metrics = [
        _epoch(1, 1, 70.0, 90.0),
        _epoch(1, 2, 78.53, 93.82),
        _epoch(2, 1, 81.55, 96.17),
        _epoch(2, 2, 80.0, 96.5),
    ]
    best = compare_rows(runs, metrics, baseline_id=1, mode="best")
    assert [row.tricks for row in best] == ["base", "+LS", "+Cosine"]
    assert best[0].top1_text == "78.53" and best[0].is_baseline
    assert best[1].top1_text == "81.55 (+3.02p)" and best[1].top5_text == "96.17 (+2.35p)"
    assert best[2].top1_text == "–" and best[2].epoch is None

    final = compare_rows(runs, metrics, baseline_id=2, mode="final")
    assert final[0].top1_text == "78.53 (-1.47p)" and final[1].is_baseline
    csv_text = rows_to_csv(final)
    assert csv_text.splitlines()[0].startswith("run_id,name,tricks,status,epoch,top1,top1_delta")
    assert csv_text.splitlines()[1].startswith("1,run 1,base,succeeded,2,78.53,-1.47,93.82")
    assert csv_text.splitlines()[2].startswith("2,run 2,'+LS,succeeded,")  # not a formula in a spreadsheet


def test_teacher_suggestion_follows_label_smoothing():
    def teacher(run_id, key, top1):
        return SimpleNamespace(
            id=run_id, name=key, config=get_preset(key).config().model_dump(mode="json"), max_valid_top1=top1
        )

    runs = [teacher(1, "T", 80.49), teacher(2, "T-LS", 82.78), teacher(3, "base", 78.53)]
    with_ls, hint = teacher_choices(runs, label_smoothing=0.1)
    assert [choice.id for choice in with_ls] == [2, 1, 3] and "#2" in hint
    without_ls, _ = teacher_choices(runs, label_smoothing=0.0)
    assert [choice.id for choice in without_ls] == [1, 3, 2]
    assert with_ls[0].label == "#2 T-LS (ResNet152 +LS, valid top-1 82.78)"
    assert teacher_choices([], label_smoothing=0.1)[1].startswith("No finished run yet")
