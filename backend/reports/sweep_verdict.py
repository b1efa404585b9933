"""A sweep's verdict: the best configuration is named a winner only where Welch's interval of its
difference to the runner-up excludes 0; otherwise the verdict says that none beats the runner-up
beyond noise. The rows are the study table's: mean ± std over seeds, delta to the best, interval, p.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from backend.reports.stats import Comparison, spread, welch


@dataclass(frozen=True)
class Candidate:
    number: int  # the trial's number in the sweep
    params: Mapping[str, Any]
    values: Sequence[float]  # the objective of each of its finished seeds


def params_text(params: Mapping[str, Any]) -> str:
    """ "optim.lr=0.01, tricks.mixup_alpha=0.2", as the sweep page writes a trial's parameters."""
    return ", ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items()
    )


def label(candidate: Candidate) -> str:
    shown = params_text(candidate.params)
    return f"#{candidate.number} ({shown})" if shown else f"#{candidate.number}"


def _interval(comparison: Comparison) -> str:
    if comparison.delta is None:
        return "no result"
    if comparison.low is None or comparison.high is None:
        return f"{comparison.delta:+.1f}p, {comparison.note}"
    return f"{comparison.delta:+.1f}p [{comparison.low:+.1f}, {comparison.high:+.1f}]"


def verdict(candidates: Sequence[Candidate], *, direction: Literal["maximize", "minimize"]) -> dict[str, Any]:
    """The winner (a trial's number) or None, the sentence that says so, and one row per candidate."""
    sign = 1 if direction == "maximize" else -1
    ranked = sorted(
        (c for c in candidates if c.values), key=lambda c: (-sign * (spread(c.values).mean or 0.0), c.number)
    )
    if not ranked:
        return {"winner": None, "text": "no trial finished: no configuration to name", "rows": []}
    best = ranked[0]
    rows = []
    for candidate in ranked:
        against = ranked[1] if candidate is best and len(ranked) > 1 else best
        comparison = welch(candidate.values, against.values) if candidate is not against else None
        figures = spread(candidate.values)
        rows.append(
            {
                "number": candidate.number,
                "params": dict(candidate.params),
                "n": figures.n,
                "mean": figures.mean,
                "std": figures.std,
                "against": against.number,
                "delta": comparison.delta if comparison else None,
                "low": comparison.low if comparison else None,
                "high": comparison.high if comparison else None,
                "p_value": comparison.p_value if comparison else None,
            }
        )
    if len(ranked) == 1:
        return {
            "winner": None,
            "text": f"{label(best)} is the only finished configuration: nothing to beat",
            "rows": rows,
        }
    runner_up = ranked[1]
    comparison = welch(best.values, runner_up.values)
    # Beyond noise: the whole interval lies on the better side of 0.
    beyond = (
        comparison.low is not None
        and comparison.high is not None
        and (comparison.low > 0 if sign > 0 else comparison.high < 0)
    )
    if beyond:
        text = f"{label(best)} beats {label(runner_up)} beyond noise ({_interval(comparison)})"
        return {"winner": best.number, "text": text, "rows": rows}
    text = f"no configuration beats {label(runner_up)} beyond noise ({label(best)}: {_interval(comparison)})"
    return {"winner": None, "text": text, "rows": rows}
