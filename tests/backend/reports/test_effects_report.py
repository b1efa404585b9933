"""The factorial effects of a grid against an independent least-squares computation, by simulation, and
in every case the design cannot answer."""

import gc
import itertools

import numpy as np
import pytest
from scipy import stats as scipy_stats

from backend.reports.effects import Cell, Factor, factor_label, factorial_effects

COSINE = Factor("cosine", (False, True), "cosine")
LS = Factor("label_smoothing", (0.0, 0.1), "LS")
KD = Factor("kd", (False, True), "KD")


def grid(factors, mean, seeds, rng=None, noise=1.0):
    """Every cell of the grid, ``seeds`` values each: ``mean(signs)`` plus normal noise (or none)."""
    cells = []
    for levels in itertools.product(*(factor.levels for factor in factors)):
        signs = [1 if level == factor.levels[1] else -1 for factor, level in zip(factors, levels, strict=True)]
        draws = rng.normal(0, noise, seeds) if rng is not None else np.zeros(seeds)
        values = [mean(signs) + float(draw) for draw in draws]
        cells.append(Cell({factor.name: level for factor, level in zip(factors, levels, strict=True)}, values))
    return cells


def reference(factors, cells, *, interactions=True, confidence=0.95):
    """numpy least squares on the −1/+1 design matrix, with SciPy's t: effects = 2 x coefficients."""
    pairs = list(itertools.combinations(range(len(factors)), 2)) if interactions else []
    rows, y = [], []
    for cell in cells:
        signs = [1.0 if cell.levels[f.name] == f.levels[1] else -1.0 for f in factors]
        for value in cell.values:
            rows.append([1.0, *signs, *(signs[a] * signs[b] for a, b in pairs)])
            y.append(value)
    x, response = np.array(rows), np.array(y)
    beta, rss, *_ = np.linalg.lstsq(x, response, rcond=None)
    df = len(response) - x.shape[1]
    se = np.sqrt(rss[0] / df * np.diag(np.linalg.inv(x.T @ x)))
    half = scipy_stats.t.ppf((1 + confidence) / 2, df) * se
    p = 2 * scipy_stats.t.sf(np.abs(beta / se), df)
    return {"estimate": 2 * beta[1:], "low": 2 * (beta - half)[1:], "high": 2 * (beta + half)[1:], "p": p[1:], "df": df}


PLANTED = {"cosine": 0.6, "label_smoothing": 2.9, "kd": 1.2, "cosine × label_smoothing": -0.9, "cosine × kd": 0.0}


def planted_mean(signs):
    a, b, c = signs
    effects = PLANTED
    return (
        70
        + (
            effects["cosine"] * a
            + effects["label_smoothing"] * b
            + effects["kd"] * c
            + effects["cosine × label_smoothing"] * a * b
            + effects["cosine × kd"] * a * c
        )
        / 2
    )


def test_the_fit_matches_least_squares_on_the_design_matrix():
    factors = [COSINE, LS, KD]
    cells = grid(factors, planted_mean, seeds=3, rng=np.random.default_rng(1))
    result = factorial_effects(factors, cells, seeds=3, study_id=1)
    expected = reference(factors, cells)
    assert [row.effect for row in result.data] == [
        "cosine", "label_smoothing", "kd", "cosine × label_smoothing", "cosine × kd", "label_smoothing × kd",
    ]  # fmt: skip
    assert [row.kind for row in result.data] == ["main"] * 3 + ["interaction"] * 3
    assert result.residual_df == expected["df"] == 24 - 7 and result.observations == 24
    for index, row in enumerate(result.data):
        assert row.estimate == pytest.approx(expected["estimate"][index], rel=1e-9, abs=1e-9)
        assert row.ci_low == pytest.approx(expected["low"][index], rel=1e-9)
        assert row.ci_high == pytest.approx(expected["high"][index], rel=1e-9)
        assert row.p_value == pytest.approx(expected["p"][index], rel=1e-6)
    assert result.model == "valid top-1 ~ cosine + LS + KD + cosine × LS + cosine × KD + LS × KD"
    assert result.not_estimable == [] and result.missing_cells == []
    assert result.notes == ["interactions of three or more switches are left in the residual, as noise"]


def test_estimates_recover_planted_effects_and_intervals_cover_them_at_the_nominal_rate():
    factors, replicates = [COSINE, LS, KD], 400
    rng = np.random.default_rng(2)
    truth = {**PLANTED, "label_smoothing × kd": 0.0}
    covered = dict.fromkeys(truth, 0)
    estimates: dict[str, list[float]] = {name: [] for name in truth}
    # statsmodels' Holm runs a full garbage collection on every call: over the test session's heap
    # (torch and all) that is a third of a second, unless what is there now is set aside.
    gc.freeze()
    try:
        for _ in range(replicates):
            result = factorial_effects(factors, grid(factors, planted_mean, seeds=2, rng=rng), seeds=2, study_id=1)
            for row in result.data:
                assert row.ci_low is not None and row.ci_high is not None
                estimates[row.effect].append(row.estimate)
                covered[row.effect] += row.ci_low <= truth[row.effect] <= row.ci_high
    finally:
        gc.unfreeze()
    # Each effect's estimate has standard deviation 2 * sigma / sqrt(16) = 0.5 here.
    for name, values in estimates.items():
        assert np.mean(values) == pytest.approx(truth[name], abs=4 * 0.5 / np.sqrt(replicates))
    # 95 % intervals over 400 replicates: the count of hits is binomial(400, 0.95), sd 4.4.
    tolerance = 3.5 * np.sqrt(0.95 * 0.05 / replicates)
    for name, hits in covered.items():
        assert abs(hits / replicates - 0.95) <= tolerance, (name, hits)


def test_holm_matches_a_hand_computation():
    factors = [COSINE, LS, KD]
    result = factorial_effects(
        factors, grid(factors, planted_mean, seeds=2, rng=np.random.default_rng(3)), seeds=2, study_id=1
    )
    p = [row.p_value for row in result.data if row.p_value is not None]
    m = len(p)
    assert m == len(result.data) == 6
    order = sorted(range(m), key=lambda i: p[i])
    holm, running = [0.0] * m, 0.0
    for rank, index in enumerate(order):  # step-down: (m - rank) * p, never below an earlier one, at most 1
        running = max(running, min(1.0, (m - rank) * p[index]))
        holm[index] = running
    assert [row.p_holm for row in result.data] == pytest.approx(holm, rel=1e-12)
    assert any(h > raw for h, raw in zip(holm, p, strict=True))


def test_the_sentence_is_written_from_the_numbers():
    # Two seeds at mean ± 0.5 per cell: each estimate is exactly the planted one, its standard error 0.5.
    planted = {"cosine": 0.6, "ls": 2.9, "both": -0.9}
    cells = []
    for a, b in itertools.product((-1, 1), repeat=2):
        mean = 70 + (planted["cosine"] * a + planted["ls"] * b + planted["both"] * a * b) / 2
        cells.append(Cell({"cosine": a == 1, "label_smoothing": 0.1 if b == 1 else 0.0}, [mean - 0.5, mean + 0.5]))
    result = factorial_effects([COSINE, LS], cells, seeds=2, study_id=1)
    assert [row.estimate for row in result.data] == pytest.approx([0.6, 2.9, -0.9])
    assert [row.std_error for row in result.data] == pytest.approx([0.5] * 3)
    assert result.sentence.startswith(
        "cosine +0.60p [−0.79, +1.99] (within noise); LS +2.90p [+1.51, +4.29]; "
        "cosine × LS −0.90p [−2.29, +0.49]: no evidence that they interact. "
        "After Holm's correction over 3 effects, LS (p=0.013) stays clear of noise at 5 %."
    )
    assert [row.within_noise for row in result.data] == [True, False, True]


def test_a_switch_of_more_than_two_levels_is_not_estimated():
    mixup = Factor("mixup_alpha", (0.0, 0.1, 0.2), "mixup 0→0.1→0.2")
    cells = [Cell({"cosine": c, "mixup_alpha": m}, [70.0, 71.0]) for c in (False, True) for m in mixup.levels]
    result = factorial_effects([COSINE, mixup], cells, seeds=2, study_id=1)
    assert result.data == [] and result.residual_df is None
    (reason,) = result.not_estimable
    assert reason.effect is None and "mixup 0→0.1→0.2 has 3 levels (0.0, 0.1, 0.2)" in reason.reason
    assert result.sentence.startswith("No effects estimated: mixup")


def test_one_seed_is_not_estimated():
    result = factorial_effects([COSINE, LS, KD], grid([COSINE, LS, KD], planted_mean, seeds=1), seeds=1, study_id=1)
    assert result.data == [] and result.not_estimable[0].reason.startswith("1 seed per cell")


def test_a_missing_cell_of_two_switches_leaves_the_main_effects_under_a_stated_assumption():
    cells = grid([COSINE, LS], lambda s: 70 + 0.3 * s[0] + 1.45 * s[1], seeds=3, rng=np.random.default_rng(4))
    cells[-1] = Cell(cells[-1].levels, [], group="+Cosine +LS", missing="runs failed: 3")
    result = factorial_effects([COSINE, LS], cells, seeds=3, study_id=1)
    expected = reference([COSINE, LS], cells, interactions=False)
    assert [row.effect for row in result.data] == ["cosine", "label_smoothing"]
    assert [row.estimate for row in result.data] == pytest.approx(expected["estimate"], rel=1e-9)
    assert result.residual_df == expected["df"] == 9 - 3
    (dropped,) = result.not_estimable
    assert dropped.effect == "cosine × label_smoothing" and "cosine=true, LS=0.1" in dropped.reason
    (missing,) = result.missing_cells
    assert missing.group == "+Cosine +LS" and missing.reason == "runs failed: 3"
    assert missing.cell == {"cosine": True, "label_smoothing": 0.1}
    assert result.notes == [
        "1 of 4 cells have no result: the estimates assume that the interactions not estimated "
        "(cosine × label_smoothing) are zero"
    ]
    assert "Not estimable: cosine × LS (no result with cosine=true, LS=0.1" in result.sentence


def test_a_missing_cell_of_three_switches_keeps_every_two_way_term():
    factors = [COSINE, LS, KD]
    cells = grid(factors, planted_mean, seeds=2, rng=np.random.default_rng(5))
    cells[3] = Cell(cells[3].levels, [], missing="skipped as invalid")
    result = factorial_effects(factors, cells, seeds=2, study_id=1)
    expected = reference(factors, cells)
    assert len(result.data) == 6 and result.residual_df == 14 - 7
    assert [row.estimate for row in result.data] == pytest.approx(expected["estimate"], rel=1e-9)
    assert "every interaction of three or more switches are zero" in result.notes[0]


def test_cells_that_cannot_separate_the_switches_are_said_so():
    cells = grid([COSINE, LS], lambda s: 70.0, seeds=2, rng=np.random.default_rng(6))
    for index in (1, 2):  # only base and both-on are left: cosine and LS always change together
        cells[index] = Cell(cells[index].levels, [], missing="runs queued: 2")
    result = factorial_effects([COSINE, LS], cells, seeds=2, study_id=1)
    assert result.data == [] and "cannot separate the switches' effects" in result.not_estimable[-1].reason
    assert len(result.missing_cells) == 2


def test_replicates_that_agree_exactly_give_estimates_without_intervals():
    result = factorial_effects(
        [COSINE, LS], grid([COSINE, LS], lambda s: 50 + 25 * (s[1] > 0), seeds=2), seeds=2, study_id=1
    )
    assert [row.estimate for row in result.data] == pytest.approx([0.0, 25.0, 0.0], abs=1e-9)
    assert all(row.ci_low is None and row.p_value is None and row.within_noise is None for row in result.data)
    assert result.residual_std == 0.0 and "no spread across seeds" in result.sentence


def test_a_switch_fixed_at_one_value_is_not_a_factor():
    fixed = Factor("mixup_alpha", (0.2,), "mixup")
    cells = [
        Cell({**cell.levels, "mixup_alpha": 0.2}, cell.values)
        for cell in grid([COSINE], lambda s: 70 + s[0], 2, np.random.default_rng(7))
    ]
    result = factorial_effects([COSINE, fixed], cells, seeds=2, study_id=1)
    assert [row.effect for row in result.data] == ["cosine"] and [f.name for f in result.switches] == ["cosine"]


def test_factor_labels():
    assert factor_label("label_smoothing", (0.0, 0.1), (0.0, 0.1)) == "LS"
    assert factor_label("label_smoothing", (0.1, 0.2), (0.0, 0.1)) == "LS 0.1→0.2"
    assert factor_label("optim.lr", (0.001, 0.003), None) == "optim.lr 0.001→0.003"
