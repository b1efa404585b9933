"""The pages' formatter (frontend/static/js/format.js, run in Chromium) and the API's
(backend/reports/numbers.py) write every number of a table alike, so a page and an API text agree."""

from __future__ import annotations

from typing import Any

from testlib.processes import REPO

from backend.reports.numbers import delta_between, format_number, format_p, format_signed, with_delta

FORMAT_JS = REPO / "frontend" / "static" / "js" / "format.js"

# test_numbers.py's cases (ties, binary near-ties, signs, carries) at every number of digits the
# pages use, and values around each rounding step.
VALUES = [
    65.625,
    0.125,
    2.675,
    -0.625,
    78.53,
    100.0,
    0.0,
    1e-9,
    -1e-9,
    99.995,
    1.005,
    0.5,
    2.5,
    -2.5,
    0.045,
    -0.045,
    1234.5678,
    81.55,
    -3.02,
    33.333333333333336,
    66.66666666666667,
    5e-324,
    -0.001,
    -0.004,
]
DIGITS = [0, 1, 2, 3]
P_VALUES = [0.0, 0.0004, 0.000999, 0.001, 0.0123, 0.0995, 0.1, 0.214, 0.995, 1.0]
# (value, baseline): test_numbers.py's DELTA_CASES, whose deltas the API computes and both sides write.
BASELINES = [
    (87.5, 84.375),
    (84.375, 87.5),
    (65.625, 65.614),
    (50.005, 50.0),
    (80.0, 80.0),
    (80.0, 80.001),
    (-0.0, 0.0),
]
DELTAS = [
    (81.55, 3.02),
    (81.55, -0.6),
    (81.55, 0.0),
    (65.625, -0.005),
    (12.0, None),
    (None, 1.0),
    *((value, delta_between(value, baseline)) for value, baseline in BASELINES),
]


def run_format_js(page: Any, calls: list[list[Any]]) -> list[str]:
    """``format.js``'s ``name(*args)`` for each [name, *args] of ``calls``, the module loaded as a page loads it."""
    return page.evaluate(
        """async ([source, calls]) => {
            const format = await import("data:text/javascript;charset=utf-8," + encodeURIComponent(source));
            return calls.map(([name, ...args]) => format[name](...args));
        }""",
        [FORMAT_JS.read_text(), calls],
    )


def test_the_page_and_the_api_write_every_number_alike(page):
    calls: list[list[Any]] = []
    expected: list[str] = []
    for value in VALUES:
        for digits in DIGITS:
            calls += [["number", value, digits], ["signed", value, digits]]
            expected += [format_number(value, digits), format_signed(value, digits)]
    for p in P_VALUES:
        calls.append(["pValue", p])
        expected.append(format_p(p))
    for shown, delta in DELTAS:
        calls.append(["withDelta", shown, delta])
        expected.append(with_delta(shown, delta))
    calls.append(["number", None])
    expected.append(format_number(None))

    written = run_format_js(page, calls)
    disagreements = [(call, js, py) for call, js, py in zip(calls, written, expected, strict=True) if js != py]
    assert not disagreements, disagreements
    assert not page.errors


def test_negative_zero_is_written_as_zero_on_both_sides(page):
    # toFixed drops the sign of -0 but writes -0.001 as "-0.00"; both sides drop the sign of any rounded zero.
    written = run_format_js(
        page, [["number", -0.0, 2], ["signed", -0.0, 2], ["number", -0.001, 2], ["signed", -0.001, 2]]
    )
    assert written == [format_number(-0.0), format_signed(-0.0), format_number(-0.001), format_signed(-0.001)]
    assert written == ["0.00", "+0.00", "0.00", "+0.00"]
