"""Seed-to-seed statistics for studies: mean and spread of replicates, and Welch's t comparison.

Functions on lists of floats. The t test is SciPy's, imported on the first comparison so that the
API process starts without it.

Welch's test (unequal variances) is the right one here: a trick can change the spread of results as
well as their mean (mixup at alpha 1 did), so pooling the two variances would be wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from backend.reports.numbers import delta_between

CONFIDENCE = 0.95
ONE_SEED = "1 seed: no interval"
NO_SPREAD = "no spread across seeds: no interval"
NO_VALUES = "no result yet"


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation (n - 1) of one group's replicates."""

    n: int
    mean: float | None
    std: float | None  # None below two values: one seed says nothing about the spread


def spread(values: Sequence[float]) -> Spread:
    n = len(values)
    if n == 0:
        return Spread(0, None, None)
    mean = math.fsum(values) / n
    if n == 1:
        return Spread(1, mean, None)
    return Spread(n, mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)))


@dataclass(frozen=True)
class Comparison:
    """mean(sample) - mean(baseline) with Welch's confidence interval and two-sided p-value.

    ``low``/``high``/``p_value`` are None when the data cannot give them; ``note`` then says why.
    """

    delta: float | None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    t: float | None = None
    df: float | None = None
    confidence: float = CONFIDENCE
    note: str | None = None

    @property
    def within_noise(self) -> bool | None:
        """Whether the interval holds 0; None without an interval."""
        if self.low is None or self.high is None:
            return None
        return self.low <= 0 <= self.high


def why_no_interval(sample: Sequence[float], baseline: Sequence[float]) -> str | None:
    """Why ``welch(sample, baseline)`` gives no interval (NO_VALUES, ONE_SEED or NO_SPREAD); None when it does."""
    a, b = spread(sample), spread(baseline)
    if a.mean is None or b.mean is None:
        return NO_VALUES
    if a.std is None or b.std is None:
        return ONE_SEED
    if a.std == b.std == 0:
        # Identical replicates on both sides (small validation sets give few distinct accuracies):
        # t is 0/0 or infinite, and neither is evidence.
        return NO_SPREAD
    return None


def welch(sample: Sequence[float], baseline: Sequence[float], *, confidence: float = CONFIDENCE) -> Comparison:
    """Welch's two-sample t: the interval of the difference in means and the p-value of "no difference",
    by ``scipy.stats.ttest_ind(sample, baseline, equal_var=False)``."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    a, b = spread(sample), spread(baseline)
    delta = delta_between(a.mean, b.mean)
    if note := why_no_interval(sample, baseline):
        return Comparison(delta, confidence=confidence, note=note)
    from scipy.stats import ttest_ind

    result = ttest_ind(sample, baseline, equal_var=False)
    interval = result.confidence_interval(confidence)
    return Comparison(
        delta,
        low=float(interval.low),
        high=float(interval.high),
        p_value=float(result.pvalue),
        t=float(result.statistic),
        df=float(result.df),
        confidence=confidence,
    )
