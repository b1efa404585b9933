"""One way to write a number: exact values rounded half away from zero, as the pages' toFixed does."""

from __future__ import annotations

import pytest

from backend.reports.numbers import format_number, format_p, format_signed, points_between, with_delta

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
    # The delta is taken between the numbers as shown, so 65.63 - 65.61 on screen is +0.02.
    assert points_between(65.625, 65.614) == pytest.approx(0.02)
    assert points_between(None, 1.0) is None
    assert with_delta(81.55, points_between(81.55, 78.53)) == "81.55 (+3.02p)"
