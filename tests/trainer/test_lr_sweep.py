"""The LR range test's pure parts against reference implementations: PyTorch's schedulers for the rates,
pandas' exponentially weighted mean for the smoothing, numpy's gradient for the steepest descent."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from trainer.config import ConfigError
from trainer.lr_finder.sweep import LRSweep, Smoother, analyse, curve_table, smooth, sweep_rate, sweep_rates


def _torch_rates(scheduler_of, base_lr: float, steps: int) -> list[float]:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = scheduler_of(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_the_reports_sweep_is_the_default():
    sweep = LRSweep()
    assert (sweep.start_lr, sweep.end_lr, sweep.steps, sweep.mode) == (1e-7, 10.0, 100, "exponential")
    assert (sweep.smoothing, sweep.stop_factor) == (0.05, 5.0)


@pytest.mark.parametrize(("start", "end", "steps"), [(1e-7, 10.0, 100), (1e-5, 1.0, 37), (0.01, 0.02, 2)])
def test_exponential_rates_are_pytorchs_exponential_lr_from_start_to_end(start, end, steps):
    sweep = LRSweep(start_lr=start, end_lr=end, steps=steps)
    gamma = (end / start) ** (1 / (steps - 1))
    reference = _torch_rates(lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma), start, steps)
    ours = sweep_rates(sweep)
    assert ours == pytest.approx(reference, rel=1e-12)
    assert ours[0] == start and ours[-1] == pytest.approx(end, rel=1e-14)
    ratios = [b / a for a, b in itertools.pairwise(ours)]
    assert ratios == pytest.approx([gamma] * (steps - 1), rel=1e-12)


def test_linear_rates_are_pytorchs_linear_lr():
    sweep = LRSweep(start_lr=1e-4, end_lr=0.5, steps=50, mode="linear")
    reference = _torch_rates(
        lambda opt: torch.optim.lr_scheduler.LinearLR(opt, start_factor=1e-4 / 0.5, end_factor=1.0, total_iters=49),
        0.5,
        50,
    )
    assert sweep_rates(sweep) == pytest.approx(reference, rel=1e-9)


def test_a_step_outside_the_sweep_is_refused():
    with pytest.raises(ValueError, match="outside the sweep's 100 steps"):
        sweep_rate(LRSweep(), 100)


def test_smoothing_is_pandas_exponentially_weighted_mean():
    losses = list(np.random.default_rng(0).uniform(1, 3, size=60))
    for weight in (0.05, 0.3, 1.0):
        reference = pd.Series(losses).ewm(alpha=weight, adjust=False).mean().tolist()
        assert smooth(losses, weight) == pytest.approx(reference, rel=1e-12)


def test_the_stop_rule_fires_once_the_smoothed_loss_passes_five_times_its_lowest():
    sweep = LRSweep(steps=40)
    losses = [2.0] * 10 + [1.0] * 10 + [1.0 * 3**k for k in range(1, 21)]
    smoother = Smoother(smoothing=sweep.smoothing, stop_factor=sweep.stop_factor)
    expected = next(
        index + 1
        for index, value in enumerate(smooth(losses, 0.05))
        if value > 5 * min(smooth(losses[: index + 1], 0.05))
    )
    reasons = [smoother.stop_reason(loss) for loss in losses[:expected]]
    assert reasons[:-1] == [None] * (expected - 1)
    assert reasons[-1] is not None and "passed 5x its lowest" in reasons[-1]
    analysis = analyse(sweep_rates(sweep), losses, sweep, finished=True)
    assert analysis.stop is not None and analysis.stop.step == expected
    assert len(analysis.points) == expected  # the curve ends where the sweep stopped


def test_a_loss_that_is_not_finite_stops_the_sweep_there():
    sweep = LRSweep(steps=6)
    analysis = analyse(sweep_rates(sweep), [2.0, 1.9, 1.5, None, 1.0, 1.0], sweep, finished=True)
    assert analysis.stop is not None and analysis.stop.step == 4 and "not a finite number" in analysis.stop.reason
    assert [point.smoothed is None for point in analysis.points] == [False, False, False, True]
    assert Smoother(smoothing=0.05, stop_factor=5).stop_reason(math.nan) is not None


def test_the_suggestion_is_numpys_steepest_gradient_before_the_minimum():
    sweep = LRSweep(steps=100, smoothing=0.3)
    rates = sweep_rates(sweep)
    x = np.log10(rates)
    # A dip with its steepest fall at 1e-3 and its bottom near 1e-1, rising again past it.
    losses = list(3 - 1.5 * (1 + np.tanh((x + 3) * 1.5)) + 0.4 * np.maximum(0, x + 1) ** 2)
    analysis = analyse(rates, losses, sweep, finished=True)
    smoothed = np.array([point.smoothed for point in analysis.points])
    gradient = np.gradient(smoothed, x[: len(smoothed)])
    lowest = int(np.argmin(smoothed))
    steepest = int(np.argmin(gradient[: lowest + 1]))
    assert analysis.minimum is not None and analysis.minimum.step == lowest + 1
    assert analysis.steepest is not None and analysis.steepest.step == steepest + 1
    assert analysis.suggestion == rates[steepest]
    assert 1e-4 < analysis.suggestion < analysis.minimum.lr
    assert analysis.minimum_tenth == pytest.approx(analysis.minimum.lr / 10)


def test_no_suggestion_before_the_end_nor_for_a_curve_that_never_falls():
    sweep = LRSweep(steps=10)
    rates = sweep_rates(sweep)
    falling = [3.0 - 0.2 * i for i in range(10)]
    assert analyse(rates[:5], falling[:5], sweep, finished=False).suggestion is None
    assert analyse(rates, falling, sweep, finished=True).suggestion is not None
    rising = [1.0 + 0.1 * i for i in range(10)]
    never = analyse(rates, rising, sweep, finished=True)
    assert never.suggestion is None and never.minimum is not None and never.minimum.step == 1


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"setps": 10}, "setps", "unknown key"),
        ({"start_lr": 1e-2, "end_lr": 1e-3}, "end_lr", "must be above start_lr"),
        ({"steps": True}, "steps", "not true or false"),
        ({"smoothing": math.nan}, "smoothing", "finite"),
        ({"end_lr": 11}, "end_lr", "less than or equal to 10"),
        ({"steps": 1}, "steps", "greater than or equal to 2"),
        ({"stop_factor": 1}, "stop_factor", "greater than 1"),
        ({"mode": "cosine"}, "mode", "exponential"),
    ],
)
def test_bad_sweeps_fail_naming_the_field(values, field, message):
    with pytest.raises(ConfigError) as error:
        LRSweep.from_dict(values)
    assert field in error.value.errors and message in error.value.errors[field]


def test_the_table_marks_the_minimum_and_the_suggestion():
    sweep = LRSweep(steps=100, smoothing=0.3)
    rates = sweep_rates(sweep)
    x = np.log10(rates)
    losses = list(3 - 1.5 * (1 + np.tanh((x + 3) * 1.5)) + 0.4 * np.maximum(0, x + 1) ** 2)
    analysis = analyse(rates, losses, sweep, finished=True)
    table = curve_table(analysis, rows=10)
    lines = table.splitlines()
    assert lines[0].split() == ["step", "lr", "loss", "smoothed"]
    marked = [line for line in lines if "<-" in line]
    assert any("minimum" in line for line in marked) and any("suggestion" in line for line in marked)
    assert 10 <= len([line for line in lines if line[:5].strip().isdigit()]) <= 12
    assert f"suggestion: optim.lr = {analysis.suggestion:.2e}" in table
    every = curve_table(analysis, rows=0)
    assert len([line for line in every.splitlines() if line[:5].strip().isdigit()]) == len(analysis.points)


def test_the_sweep_module_imports_no_torch():
    # The web process reads the stored curves with it and must start without loading torch.
    code = "import sys, trainer.lr_finder.sweep; assert 'torch' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
