"""Which tricks really add up: the factorial effects of a grid study.

A grid over k on/off switches, replicated over seeds, is a 2^k factorial design. Its accuracy is fitted
by ordinary least squares (statsmodels) with every main effect and every two-way interaction, each
switch coded −1 at its first level (the baseline's) and +1 at its second. Each effect is reported in
points as twice its coefficient: for a main effect in a balanced grid, the mean at the second level
minus the mean at the first; for an interaction a × b, half of how much a's effect changes with b.
Intervals and p-values are t on the residual degrees of freedom (the seed-to-seed noise, and for k >= 3
the interactions of three or more switches, which a full grid keeps orthogonal to the fitted terms);
Holm's correction runs across the effects.

What the design cannot answer is said instead of guessed:
- a switch of more than two levels has no single effect in points: nothing is fitted;
- one seed per cell leaves no noise to measure (for k <= 2 the model is saturated; for k >= 3 the
  only residual would be the higher interactions, assumed zero): nothing is fitted;
- with cells missing (skipped as invalid, still running, failed), an interaction a × b needs all four
  combinations of a and b among the cells with results, and is dropped otherwise; the main effects are
  fitted when the cells left still identify them, on the stated assumption that what was dropped (and
  every interaction of three or more switches) is zero, which a full grid would not need.

statsmodels is imported on the first fit, so the API process starts without it.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.schemas.effects import EffectPublic, FactorPublic, MissingCell, NotEstimable, StudyEffects
from backend.schemas.studies import Metric

CONFIDENCE = 0.95
METHOD = "ordinary least squares (statsmodels), effect coding −1/+1, t intervals; Holm's correction across effects"
INTERACTION = " × "
# Short names for the sentence; other switches (dotted RunConfig keys) go by their key.
SHORT_NAMES = {
    "cosine": "cosine",
    "label_smoothing": "LS",
    "kd": "KD",
    "mixup_alpha": "mixup",
    "warmup_epochs": "warmup",
    "no_bias_decay": "no bias decay",
}
METRIC_NAMES: Mapping[Metric, str] = {"valid": "valid top-1", "test": "test top-1"}


@dataclass(frozen=True)
class Factor:
    """A switch of the grid with its values, the baseline's first."""

    name: str
    levels: tuple[Any, ...]
    label: str


@dataclass(frozen=True)
class Cell:
    """One combination of the switches' values and the metric of its succeeded runs."""

    levels: Mapping[str, Any]
    values: Sequence[float]
    group: str | None = None  # the study's group; None for a combination that was skipped
    missing: str | None = None  # why there are no values, when there are none


def factor_label(name: str, levels: Sequence[Any], default: tuple[Any, Any] | None) -> str:
    """ "LS" for the trick's usual off/on, "LS 0.1→0.2" (or "optim.lr 0.001→0.003") for other levels."""
    short = SHORT_NAMES.get(name, name)
    if default is not None and tuple(levels) == default:
        return short
    return f"{short} " + "→".join(json.dumps(level) for level in levels)


def _points(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def _p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}" if p < 0.1 else f"p={p:.2f}"


@dataclass
class _Term:
    effect: str
    factors: tuple[Factor, ...]

    @property
    def label(self) -> str:
        return INTERACTION.join(factor.label for factor in self.factors)

    def column(self, cells: Sequence[Cell]) -> np.ndarray:
        signs = np.ones(len(cells))
        for factor in self.factors:
            signs *= [1.0 if cell.levels[factor.name] == factor.levels[1] else -1.0 for cell in cells]
        return signs


def _design(terms: Sequence[_Term], rows: Sequence[Cell]) -> np.ndarray:
    return np.column_stack([np.ones(len(rows)), *(term.column(rows) for term in terms)])


def _result(
    *,
    study_id: int,
    metric: Metric,
    factors: Sequence[Factor],
    missing: Sequence[Cell],
    not_estimable: list[NotEstimable],
    observations: int = 0,
    model: str | None = None,
    residual_df: int | None = None,
    residual_std: float | None = None,
    effects: Sequence[EffectPublic] = (),
    notes: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
) -> StudyEffects:
    return StudyEffects(
        study_id=study_id,
        metric=metric,
        model=model,
        method=METHOD,
        confidence=CONFIDENCE,
        switches=[FactorPublic(name=f.name, label=f.label, levels=list(f.levels)) for f in factors],
        observations=observations,
        residual_df=residual_df,
        residual_std=residual_std,
        data=list(effects),
        count=len(effects),
        not_estimable=not_estimable,
        missing_cells=[
            MissingCell(cell=dict(cell.levels), group=cell.group, reason=cell.missing or "no result")
            for cell in missing
        ],
        notes=list(notes),
        sentence=_sentence(effects, not_estimable, labels or {}),
    )


def not_analysed(*, study_id: int, metric: Metric, reason: str) -> StudyEffects:
    """The answer for a study that is no factorial grid at all (a preset, say)."""
    return _result(
        study_id=study_id,
        metric=metric,
        factors=[],
        missing=[],
        not_estimable=[NotEstimable(effect=None, reason=reason)],
    )


def factorial_effects(
    factors: Sequence[Factor],
    cells: Sequence[Cell],
    *,
    seeds: int,
    study_id: int,
    metric: Metric = "valid",
    notes: Sequence[str] = (),
) -> StudyEffects:
    """The main effects and two-way interactions of a grid, or why they cannot be estimated.

    ``factors`` are the grid's switches in its order, ``cells`` every combination it planned (those
    without values say why in ``missing``), ``seeds`` the replicates planned per cell; ``notes`` are
    the caller's, shown with the fit's own.
    """
    missing = [cell for cell in cells if not cell.values]
    varied = [factor for factor in factors if len(factor.levels) > 1]
    said = list(notes)

    def nothing(reason: str) -> StudyEffects:
        return _result(
            study_id=study_id,
            metric=metric,
            factors=varied,
            missing=missing,
            not_estimable=[NotEstimable(effect=None, reason=reason)],
            notes=said,
        )

    many = [factor for factor in varied if len(factor.levels) > 2]
    if many:
        described = "; ".join(
            f"{f.label} has {len(f.levels)} levels ({', '.join(json.dumps(v) for v in f.levels)})" for f in many
        )
        return nothing(
            f"{described}: an effect in points compares two levels, so this grid is not a 2^k design; "
            "grid each switch on two values, or read the study table's comparisons with the baseline"
        )
    if not varied:
        return nothing("no switch of the grid takes two values: there is no effect to estimate")
    if seeds < 2:
        return nothing(
            "1 seed per cell: without replicates there is no seed-to-seed noise to measure the effects "
            "against; run the grid with 2 or more seeds"
        )

    present = [cell for cell in cells if cell.values]
    if not present:
        return nothing("no cell has a result yet")
    mains = [_Term(factor.name, (factor,)) for factor in varied]
    pairs = [_Term(a.name + INTERACTION + b.name, (a, b)) for a, b in itertools.combinations(varied, 2)]
    all_mains, all_pairs = list(mains), list(pairs)
    not_estimable: list[NotEstimable] = []
    if missing:
        kept_pairs = []
        for pair in pairs:
            a, b = pair.factors
            seen = {(cell.levels[a.name], cell.levels[b.name]) for cell in present}
            if len(seen) == 4:
                kept_pairs.append(pair)
                continue
            lacking = [
                f"{a.label}={json.dumps(x)}, {b.label}={json.dumps(y)}"
                for x, y in itertools.product(a.levels, b.levels)
                if (x, y) not in seen
            ]
            not_estimable.append(
                NotEstimable(
                    effect=pair.effect,
                    reason=f"no result with {' or '.join(lacking)}: an interaction needs all four combinations",
                )
            )
        pairs = kept_pairs
        for main in list(mains):
            (factor,) = main.factors
            if len({cell.levels[factor.name] for cell in present}) < 2:
                mains.remove(main)
                not_estimable.append(NotEstimable(effect=main.effect, reason="no result at one of its two levels"))

    rows = [cell for cell in present for _ in cell.values]
    y = np.array([value for cell in present for value in cell.values], dtype=float)
    terms = [*mains, *pairs]
    if terms and np.linalg.matrix_rank(_design(terms, rows)) < len(terms) + 1 and pairs:
        not_estimable += [
            NotEstimable(effect=pair.effect, reason="the cells with results cannot tell it from the main effects")
            for pair in pairs
        ]
        pairs = []
        terms = list(mains)
    if not terms or np.linalg.matrix_rank(_design(terms, rows)) < len(terms) + 1:
        return nothing(f"the cells with results ({len(present)} of {len(cells)}) cannot separate the switches' effects")
    residual_df = len(y) - len(terms) - 1
    if residual_df < 1:
        return nothing(f"{len(y)} results for {len(terms) + 1} coefficients: no degrees of freedom left for noise")
    if missing:
        dropped = [item.effect for item in not_estimable if item.effect and INTERACTION in item.effect]
        assumed = [f"the interactions not estimated ({', '.join(dropped)})"] if dropped else []
        if len(varied) >= 3:
            assumed.append("every interaction of three or more switches")
        if assumed:
            said.append(
                f"{len(missing)} of {len(cells)} cells have no result: the estimates assume that "
                f"{' and '.join(assumed)} are zero"
            )
    elif len(varied) >= 3:
        said.append("interactions of three or more switches are left in the residual, as noise")
    if len({len(cell.values) for cell in present}) > 1:
        counts = sorted({len(cell.values) for cell in present})
        said.append(f"unbalanced: {counts[0]} to {counts[-1]} results per cell")

    effects, residual_std = _fit(terms, rows, y)
    model = f"{METRIC_NAMES[metric]} ~ " + " + ".join(term.label for term in terms)
    return _result(
        study_id=study_id,
        metric=metric,
        factors=varied,
        missing=missing,
        not_estimable=not_estimable,
        observations=len(y),
        model=model,
        residual_df=residual_df,
        residual_std=residual_std,
        effects=effects,
        notes=said,
        labels={term.effect: term.label for term in [*all_mains, *all_pairs]},
    )


def _fit(terms: Sequence[_Term], rows: Sequence[Cell], y: np.ndarray) -> tuple[list[EffectPublic], float | None]:
    """OLS of ``y`` on the terms; effects are 2 x coefficients, and so are their errors and intervals."""
    from statsmodels.regression.linear_model import OLS
    from statsmodels.stats.multitest import multipletests

    fit = OLS(y, _design(terms, rows)).fit()
    estimates = 2 * np.asarray(fit.params)[1:]
    # Replicates that agree exactly (a small validation set has few distinct accuracies) leave no
    # noise: a t of 0/0 or infinity is no evidence, so no interval is given.
    scale = max(1.0, float(np.max(np.abs(y))))
    if float(fit.ssr) <= (1e-9 * scale) ** 2 * len(y):
        return [_effect(term, float(estimate)) for term, estimate in zip(terms, estimates, strict=True)], 0.0
    errors = 2 * np.asarray(fit.bse)[1:]
    intervals = 2 * np.asarray(fit.conf_int(alpha=1 - CONFIDENCE))[1:]
    p_values = np.asarray(fit.pvalues)[1:]
    p_holm = multipletests(p_values, method="holm")[1]
    effects = [
        _effect(term, float(estimate), float(error), (float(low), float(high)), float(p), float(holm))
        for term, estimate, error, (low, high), p, holm in zip(
            terms, estimates, errors, intervals, p_values, p_holm, strict=True
        )
    ]
    return effects, math.sqrt(float(fit.scale))


def _effect(
    term: _Term,
    estimate: float,
    error: float | None = None,
    interval: tuple[float, float] | None = None,
    p_value: float | None = None,
    p_holm: float | None = None,
) -> EffectPublic:
    if interval is None or p_value is None or p_holm is None:
        within, text = None, f"{_points(estimate)}p (no spread across seeds: no interval)"
    else:
        low, high = interval
        within = low <= 0 <= high
        text = f"{_points(estimate)}p [{_points(low)}, {_points(high)}] {_p_text(p_value)} (Holm {_p_text(p_holm)})"
    return EffectPublic(
        effect=term.effect,
        kind="main" if len(term.factors) == 1 else "interaction",
        switches=[factor.name for factor in term.factors],
        label=term.label,
        estimate=estimate,
        std_error=error,
        ci_low=None if interval is None else interval[0],
        ci_high=None if interval is None else interval[1],
        p_value=p_value,
        p_holm=p_holm,
        within_noise=within,
        text=text,
    )


def _sentence(effects: Sequence[EffectPublic], not_estimable: Sequence[NotEstimable], labels: Mapping[str, str]) -> str:
    """e.g. "cosine +0.60p [−0.20, +1.40] (within noise); LS +2.90p [+1.80, +4.00]; cosine × LS −0.90p
    [−2.00, +0.20]: no evidence that they interact. After Holm's correction over 3 effects, LS stays clear
    of noise (p=0.012)." """
    whole = [item.reason for item in not_estimable if item.effect is None]
    if whole:
        return "No effects estimated: " + "; ".join(whole) + "."

    def shown(effect: EffectPublic) -> str:
        if effect.ci_low is None or effect.ci_high is None:
            return f"{effect.label} {_points(effect.estimate)}p (no spread across seeds: no interval)"
        interval = f"{effect.label} {_points(effect.estimate)}p [{_points(effect.ci_low)}, {_points(effect.ci_high)}]"
        if effect.kind == "main":
            return interval + (" (within noise)" if effect.within_noise else "")
        return interval + ("" if effect.within_noise else ": they interact, so these two do not simply add up")

    mains = [effect for effect in effects if effect.kind == "main"]
    interactions = [effect for effect in effects if effect.kind == "interaction"]
    parts = [shown(effect) for effect in mains]
    interaction_text = "; ".join(shown(effect) for effect in interactions)
    if interactions and all(effect.within_noise for effect in interactions):
        pronoun = "they" if len(interactions) == 1 else "any two of them"
        interaction_text += f": no evidence that {pronoun} interact"
    if interaction_text:
        parts.append(interaction_text)
    text = "; ".join(parts) + "."
    tested = [effect for effect in effects if effect.p_holm is not None]
    if tested:
        clear = [
            f"{effect.label} ({_p_text(effect.p_holm)})"
            for effect in tested
            if effect.p_holm is not None and effect.p_holm < 0.05
        ]
        who = f"{', '.join(clear)} stay{'s' if len(clear) == 1 else ''}" if clear else "none stays"
        text += f" After Holm's correction over {len(tested)} effects, {who} clear of noise at 5 %."
    dropped = [f"{labels.get(item.effect, item.effect)} ({item.reason})" for item in not_estimable if item.effect]
    if dropped:
        text += f" Not estimable: {'; '.join(dropped)}."
    return text
