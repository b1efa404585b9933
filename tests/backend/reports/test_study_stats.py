"""Welch's comparison against SciPy's own, the edge cases it leaves out, and the texts the table shows."""

import math
import random
from types import SimpleNamespace

import pytest
from scipy import stats as scipy_stats

from backend.reports import stats
from backend.reports.study import curve_band, metric_stats


def scipy_welch(sample, baseline, confidence=0.95):
    result = scipy_stats.ttest_ind(sample, baseline, equal_var=False)
    interval = result.confidence_interval(confidence)
    return result.statistic, result.pvalue, result.df, interval.low, interval.high


@pytest.mark.parametrize(
    ("sample", "baseline"),
    [
        # Unequal sizes and spreads: where Welch and Student differ.
        ([79.1, 79.9, 78.6, 80.2], [78.5, 78.9, 78.1]),
        ([81.55, 81.2], [78.53, 78.0, 79.1, 78.8, 78.2]),
        ([5.27, 30.1, 12.0], [78.53, 78.6, 78.4]),
        ([1.0, 2.0], [1.0, 2.0]),  # no difference at all: p = 1
        ([0.0, 25.0], [50.0, 50.0]),  # one side without spread: still defined
    ],
)
@pytest.mark.filterwarnings("ignore:Precision loss occurred")  # SciPy's remark on the constant side
def test_welch_matches_scipy(sample, baseline):
    comparison = stats.welch(sample, baseline)
    t, p, df, low, high = scipy_welch(sample, baseline)
    assert comparison.delta == pytest.approx(sum(sample) / len(sample) - sum(baseline) / len(baseline))
    assert comparison.t == pytest.approx(t, rel=1e-12)
    assert comparison.df == pytest.approx(df, rel=1e-12)
    assert comparison.p_value == pytest.approx(p, rel=1e-9, abs=1e-14)
    assert (comparison.low, comparison.high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    assert comparison.note is None


def test_welch_matches_scipy_on_random_samples_and_other_confidences():
    rng = random.Random(0)
    for _ in range(300):
        sample = [rng.gauss(rng.uniform(-2, 2), rng.uniform(0.01, 3)) for _ in range(rng.randint(2, 9))]
        baseline = [rng.gauss(0, rng.uniform(0.01, 3)) for _ in range(rng.randint(2, 9))]
        confidence = rng.choice([0.8, 0.9, 0.95, 0.99])
        comparison = stats.welch(sample, baseline, confidence=confidence)
        t, p, _df, low, high = scipy_welch(sample, baseline, confidence)
        assert comparison.t == pytest.approx(t, rel=1e-9)
        assert comparison.p_value == pytest.approx(p, rel=1e-8, abs=1e-14)
        assert comparison.low == pytest.approx(low, rel=1e-8, abs=1e-12)
        assert comparison.high == pytest.approx(high, rel=1e-8, abs=1e-12)


def test_one_seed_gives_a_delta_but_no_interval():
    for sample, baseline in (([80.0], [78.0, 79.0]), ([80.0, 81.0], [78.0]), ([80.0], [78.0])):
        comparison = stats.welch(sample, baseline)
        assert comparison.delta is not None
        assert (comparison.low, comparison.high, comparison.p_value) == (None, None, None)
        assert comparison.note == stats.ONE_SEED == "1 seed: no interval"
        assert comparison.within_noise is None


def test_identical_replicates_on_both_sides_give_no_interval():
    comparison = stats.welch([50.0, 50.0], [25.0, 25.0, 25.0])
    assert comparison.delta == 25.0
    assert comparison.low is None and comparison.note == stats.NO_SPREAD


def test_no_values_and_bad_confidence():
    assert stats.welch([], [1.0, 2.0]).note == stats.NO_VALUES
    with pytest.raises(ValueError, match="confidence"):
        stats.welch([1.0, 2.0], [1.0, 2.0], confidence=1.0)


def test_spread_is_the_sample_standard_deviation():
    assert stats.spread([]) == stats.Spread(0, None, None)
    assert stats.spread([3.0]) == stats.Spread(1, 3.0, None)
    spread = stats.spread([1.0, 2.0, 4.0])
    assert spread.mean == pytest.approx(7 / 3)
    assert spread.std == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))


def test_within_noise_means_the_interval_holds_zero():
    assert stats.welch([79.0, 80.5, 78.7], [78.5, 79.6, 78.2]).within_noise is True
    assert stats.welch([82.0, 82.1, 81.9], [78.5, 78.6, 78.4]).within_noise is False


def test_metric_stats_texts_and_verdicts():
    helped = metric_stats([82.0, 82.2, 81.9], [78.5, 78.6, 78.4], is_baseline=False)
    assert helped.verdict == "helped" and helped.text == "82.03 ± 0.15"
    assert helped.delta_text.startswith("+3.53p [") and helped.delta_text.endswith("p<0.001")
    hurt = metric_stats([5.3, 30.1, 12.0, 4.0], [78.5, 78.6, 78.4], is_baseline=False)
    assert hurt.verdict == "hurt" and hurt.delta_text.startswith("−")
    noise = metric_stats([79.0, 80.5, 78.7], [78.5, 79.6, 78.2], is_baseline=False)
    assert noise.verdict == "within noise" and noise.within_noise is True
    single = metric_stats([81.55], [78.53], is_baseline=False)
    assert (single.text, single.delta_text, single.verdict) == (
        "81.55",
        "+3.02p (1 seed: no interval)",
        "1 seed: no interval",
    )
    # Said once above the table when every row shares it: the row keeps the reason in its verdict only.
    said_once = metric_stats([81.55], [78.53], is_baseline=False, said_once=stats.ONE_SEED)
    assert (said_once.delta_text, said_once.verdict) == ("+3.02p", "1 seed: no interval")
    base = metric_stats([78.53], [78.53], is_baseline=True)
    assert (base.verdict, base.delta, base.delta_text) == ("baseline", None, "baseline")
    assert metric_stats([], [78.5], is_baseline=False).text == "–"


def test_curve_band_is_mean_and_std_per_epoch():
    rows = [
        SimpleNamespace(epoch=epoch, valid_top1=value)
        for epoch, value in [(1, 10.0), (1, 20.0), (2, 30.0), (2, None), (2, 50.0), (3, 60.0)]
    ]
    band = curve_band(rows, "valid_top1")
    assert band.epoch == [1, 2, 3]
    assert band.mean == [15.0, 40.0, 60.0]
    assert band.std[:2] == [pytest.approx(math.sqrt(50)), pytest.approx(math.sqrt(200))]
    assert band.std[2] is None and band.n == [2, 2, 1]
