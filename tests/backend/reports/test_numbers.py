"""One way to write a number: exact values rounded half away from zero, as the pages' toFixed does."""

from __future__ import annotations

import pytest

from backend.reports.numbers import delta_between, format_number, format_p, format_signed, with_delta

# Values whose rounding differs between Python's own formatting and JavaScript's toFixed, and a few
# that do not. tests/frontend/test_numbers_agree.py checks the page's formatter on the same list.
CASES = [
    (65.625, "65.63"),  # an exact tie: f"{65.625:.2f}" is "65.62"
    (0.125, "0.13"),
    (2.675, "2.67"),  # 2.67499999... in binary: no tie, both round down
    (-0.625, "−0.63"),
    (78.53, "78.53"),
    (100.0, "100.00"),
    (0.0, "0.00"),
    (1e-9, "0.00"),
    (99.995, "100.00"),
]


@pytest.mark.parametrize(("value", "text"), CASES)
def test_numbers_round_half_away_from_zero(value, text):
    assert format_number(value) == text


def test_signed_deltas_p_values_and_points():
    assert (format_signed(3.02), format_signed(-0.6), format_signed(0.0)) == ("+3.02", "−0.60", "+0.00")
    assert format_number(None) == "–" and format_number(3.14159, 1) == "3.1"
    assert (format_p(0.0004), format_p(0.0123), format_p(0.214)) == ("p<0.001", "p=0.012", "p=0.21")
    assert with_delta(81.55, delta_between(81.55, 78.53)) == "81.55 (+3.02p)"


# (value, baseline, the delta as written): one rule, the unrounded difference rounded once.
DELTA_CASES = [
    (87.5, 84.375, "+3.13"),  # +3.125: the figures as shown (87.50 - 84.38) would give +3.12
    (84.375, 87.5, "−3.13"),
    (65.625, 65.614, "+0.01"),  # +0.011; the figures as shown (65.63 - 65.61) would give +0.02
    (50.005, 50.0, "+0.01"),  # 0.00500000000000255 in binary: a tie's neighbour, rounded up
    (80.0, 80.0, "+0.00"),
    (80.0, 80.001, "+0.00"),  # -0.001 rounds to a zero without a sign
    (-0.0, 0.0, "+0.00"),  # a negative zero
]


@pytest.mark.parametrize(("value", "baseline", "text"), DELTA_CASES)
def test_a_delta_is_the_unrounded_difference_rounded_once(value, baseline, text):
    delta = delta_between(value, baseline)
    assert delta is not None and format_signed(delta) == text
    assert with_delta(value, delta) == f"{format_number(value)} ({text}p)"


def test_a_delta_needs_both_figures():
    assert delta_between(None, 1.0) is None and delta_between(1.0, None) is None
    assert with_delta(81.55, None) == "81.55"
