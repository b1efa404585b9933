"""Seed-to-seed statistics for studies: mean and spread of replicates, and Welch's t comparison.

Plain functions on lists of floats, with no numeric library: the server needs a t quantile and a
t tail probability only, and both follow from the regularized incomplete beta function.

Welch's test (unequal variances) is the right one here: a trick can change the spread of results as
well as their mean (mixup at alpha 1 did), so pooling the two variances would be wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


def welch(sample: Sequence[float], baseline: Sequence[float], *, confidence: float = CONFIDENCE) -> Comparison:
    """Welch's two-sample t: the interval of the difference in means and the p-value of "no difference".

    Matches ``scipy.stats.ttest_ind(sample, baseline, equal_var=False)`` (statistic, pvalue, df and
    confidence_interval(confidence)).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    a, b = spread(sample), spread(baseline)
    if a.mean is None or b.mean is None:
        return Comparison(None, confidence=confidence, note=NO_VALUES)
    delta = a.mean - b.mean
    if a.std is None or b.std is None:
        return Comparison(delta, confidence=confidence, note=ONE_SEED)
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:
        # Identical replicates on both sides (small validation sets give few distinct accuracies):
        # t is 0/0 or infinite, and neither is evidence.
        return Comparison(delta, confidence=confidence, note=NO_SPREAD)
    df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    t = delta / se
    half = t_quantile(0.5 + confidence / 2, df) * se
    return Comparison(delta, delta - half, delta + half, t_two_sided_p(t, df), t, df, confidence)


# --- Student's t distribution -------------------------------------------------------------------


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for T ~ Student's t with ``df`` degrees of freedom (df > 0, may be fractional)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    return regularized_beta(df / (df + t * t), df / 2, 0.5)


def t_cdf(t: float, df: float) -> float:
    tail = t_two_sided_p(t, df) / 2
    return 1 - tail if t > 0 else tail


def t_quantile(q: float, df: float) -> float:
    """The t with P(T <= t) = q, by bisection on the CDF (monotone, so it cannot miss)."""
    if not 0 < q < 1:
        raise ValueError(f"quantile must be between 0 and 1, got {q}")
    if q < 0.5:
        return -t_quantile(1 - q, df)
    high = 1.0
    while t_cdf(high, df) < q:
        high *= 2
    low = 0.0
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, df) < q:
            low = middle
        else:
            high = middle
        if high - low <= 1e-13 * max(1.0, high):
            break
    return (low + high) / 2


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), by the continued fraction (Numerical Recipes, betacf) on the side where it converges fast."""
    if not 0 <= x <= 1:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1 - math.exp(log_front) * _beta_fraction(1 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    # Modified Lentz's method; TINY keeps a denominator from reaching exactly zero.
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < eps:
            break
    return h
