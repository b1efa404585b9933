"""A sweep's two tables as cells of text, for its report: the confirmation table (the verdict's rows:
mean ± std over seeds, the delta in points with its Welch interval, p) and the trials table (each
trial's parameters, state, objective and where it was pruned). The numbers are written as the study
table writes them (``numbers.py``), so Markdown and LaTeX say what the HTML says."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from backend.reports.numbers import NONE, format_number, format_p, format_signed
from backend.reports.stats import CONFIDENCE
from backend.reports.sweep_verdict import params_text
from backend.reports.text_table import TextTable

LEVEL = round(CONFIDENCE * 100)


def confirmation_table(conclusion: Mapping[str, Any] | None, *, objective: str, seeds_text: str) -> TextTable:
    """The verdict's rows, best first: the best against the runner-up, every other one against the best."""
    rows = [] if conclusion is None else conclusion["rows"]
    winner = None if conclusion is None else conclusion["winner"]
    body = []
    for row in rows:
        spread = format_number(row["mean"]) + ("" if row["std"] is None else f" ± {format_number(row['std'])}")
        if row["delta"] is None:
            delta = NONE
        elif row["low"] is None or row["high"] is None:
            delta = f"{format_signed(row['delta'])}p vs #{row['against']} (no interval)"
        else:
            delta = (
                f"{format_signed(row['delta'])}p [{format_signed(row['low'])}, {format_signed(row['high'])}] "
                f"vs #{row['against']}"
            )
        body.append(
            [
                f"#{row['number']}" + (" [winner]" if row["number"] == winner else ""),
                params_text(row["params"]),
                str(row["n"]),
                spread,
                delta,
                NONE if row["p_value"] is None else format_p(row["p_value"]),
            ]
        )
    notes = [] if conclusion else ["No verdict yet: the sweep has not ended."]
    return TextTable(
        caption=f"The {objective}: mean ± standard deviation over {seeds_text}, and the difference in points "
        f"to the best (the best's: to the runner-up) with its {LEVEL} % Welch interval and p-value.",
        columns=["Trial", "Parameters", "Seeds", "Mean ± std", f"Δ [{LEVEL} % CI]", "p"],
        rows=body,
        notes=notes,
    )


def trials_table(trials: Sequence[Any], *, objective: str, best: int | None) -> TextTable:
    """Every trial (``TrialPublic``): its parameters, state, seeds done, objective and where it was pruned."""
    body = []
    for trial in trials:
        search = [run for run in trial.runs if not run.confirm]
        done = sum(run.status.value == "succeeded" for run in search)
        marks = " [best]" if trial.number == best else ""
        marks += " [warm start]" if trial.warm else ""
        marks += f" [runs #{trial.retry_of} again]" if trial.retry_of is not None else ""
        body.append(
            [
                f"#{trial.number}{marks}",
                trial.state.value,
                params_text(trial.params),
                trial.pruned or NONE,
                f"{done}/{len(search)}",
                format_number(trial.value),
            ]
        )
    return TextTable(
        caption=f"Every trial in the order it was asked: its parameters, its state, where it was pruned and "
        f"against which figures, its search seeds done, and its {objective} (the mean over its search seeds; "
        "a pruned trial's: the last value told to the pruner).",
        columns=["Trial", "State", "Parameters", "Pruned", "Seeds done", "Objective"],
        rows=body,
        notes=[],
        text_columns=4,
    )
