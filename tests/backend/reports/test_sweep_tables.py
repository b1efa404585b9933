"""A sweep report's tables as text: a pruned trial says where and against what, a warm-started or retried
one says so, and a verdict over single seeds gives a delta without an interval."""

from __future__ import annotations

from datetime import UTC, datetime

from backend.models import RunStatus, TrialState
from backend.reports.sweep_tables import confirmation_table, trials_table
from backend.reports.text_table import to_latex, to_markdown
from backend.schemas.sweeps import TrialPublic, TrialRun

NOW = datetime(2026, 12, 7, tzinfo=UTC)
WHY = "pruned at epoch 1, rung 0: peak valid top-1 (%) 12.50, against the median 40.00 of 3 trials (50.00, 40.00)"


def trial(
    number: int, state: TrialState, value: float | None, statuses: list[RunStatus], **more: object
) -> TrialPublic:
    runs = [
        TrialRun(run_id=10 * number + i, seed=i, confirm=False, status=s, value=None) for i, s in enumerate(statuses)
    ]
    fields = {"warm": False, "retry_of": None, "pruned": None, **more}
    return TrialPublic(
        number=number,
        state=state,
        params={"optim.lr": 0.0123456, "optim.name": "sgd"},
        value=value,
        reported_epoch=1,
        created_at=NOW,
        finished_at=NOW,
        runs=runs,
        **fields,
    )


def test_the_trials_table_marks_the_best_pruned_warm_and_retried_trials():
    table = trials_table(
        [
            trial(0, TrialState.complete, 70.0, [RunStatus.succeeded] * 2, warm=True),
            trial(1, TrialState.pruned, 12.5, [RunStatus.cancelled] * 2, pruned=WHY),
            trial(2, TrialState.failed, None, [RunStatus.failed, RunStatus.succeeded]),
            trial(3, TrialState.complete, 71.25, [RunStatus.succeeded] * 2, retry_of=2),
        ],
        objective="peak valid top-1 (%)",
        best=3,
    )
    assert table.rows == [
        ["#0 [warm start]", "complete", "optim.lr=0.01235, optim.name=sgd", "–", "2/2", "70.00"],
        ["#1", "pruned", "optim.lr=0.01235, optim.name=sgd", WHY, "0/2", "12.50"],
        ["#2", "failed", "optim.lr=0.01235, optim.name=sgd", "–", "1/2", "–"],
        ["#3 [best] [runs #2 again]", "complete", "optim.lr=0.01235, optim.name=sgd", "–", "2/2", "71.25"],
    ]
    # Four columns of words, then the numbers, aligned right in both formats.
    assert "|---|---|---|---|---:|---:|" in to_markdown(table)
    assert "\\begin{tabular}{llllrr}" in to_latex(table, label="tab:t")


def test_the_confirmation_table_without_an_interval_says_so():
    conclusion = {
        "winner": None,
        "text": "no configuration beats #1 beyond noise",
        "rows": [
            {"number": 0, "params": {"optim.lr": 0.01}, "n": 1, "mean": 70.0, "std": None, "against": 1,
             "delta": 0.5, "low": None, "high": None, "p_value": None},
            {"number": 1, "params": {"optim.lr": 0.1}, "n": 1, "mean": 69.5, "std": None, "against": 0,
             "delta": -0.5, "low": None, "high": None, "p_value": None},
        ],
    }  # fmt: skip
    table = confirmation_table(conclusion, objective="peak valid top-1 (%)", seeds_text="its seeds")
    assert table.rows == [
        ["#0", "optim.lr=0.01", "1", "70.00", "+0.50p vs #1 (no interval)", "–"],
        ["#1", "optim.lr=0.1", "1", "69.50", "−0.50p vs #0 (no interval)", "–"],
    ]
    assert table.notes == []
    assert confirmation_table(None, objective="x", seeds_text="y").notes == ["No verdict yet: the sweep has not ended."]
