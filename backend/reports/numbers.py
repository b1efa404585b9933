"""How a number is written, for the API's texts; ``frontend/static/js/format.js`` is the same for the pages.

Both round a float's exact binary value half away from zero, as JavaScript's ``toFixed`` does, so
65.625 is "65.63" on every page and in every API text (Python's own formatting would say "65.62").
A minus sign is the typographic one, and a delta always carries its sign. A delta is the difference
of the unrounded figures, rounded once when written (``delta_between``), wherever it is shown.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

DIGITS = 2
NONE = "–"
MINUS = "−"


def round_half_away(value: float, digits: int = DIGITS) -> Decimal:
    """``value`` rounded to ``digits`` decimals, exactly as it is then written."""
    # -0.0 + 0.0 is 0.0: a negative zero is written "0.00", as toFixed writes it.
    return Decimal(value + 0.0).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def format_number(value: float | None, digits: int = DIGITS) -> str:
    """ "65.63", "−0.50", "0.00" (for -0.001 too), or "–" without a value."""
    if value is None:
        return NONE
    rounded = round_half_away(value, digits)
    # A figure that rounds to zero has no sign: a delta of -0.001 reads "+0.00", never "−0.00".
    return str(abs(rounded) if rounded == 0 else rounded).replace("-", MINUS)


def format_signed(value: float, digits: int = DIGITS) -> str:
    """ "+3.02", "−0.60", "+0.00": a difference, whose sign is always written."""
    text = format_number(value, digits)
    return text if text.startswith(MINUS) else "+" + text


def delta_between(value: float | None, baseline: float | None) -> float | None:
    """The one delta of every page, API text and CSV: ``value - baseline`` of the unrounded figures,
    rounded only when it is written (87.5 against 84.375 is +3.125, written "+3.13").

    Subtracting the figures as shown (87.50 - 84.38 = 3.12) would make a delta depend on how many
    digits a page shows, and disagree with the study's interval and p-value, which are computed on the
    unrounded values. Accuracies within a factor of two of each other subtract exactly in binary floating
    point, so the pages (which format the API's number) and this module round the same exact value.
    """
    if value is None or baseline is None:
        return None
    return value - baseline


def format_p(p: float) -> str:
    """A p-value with the digits that matter: "p<0.001", "p=0.012", "p=0.21"."""
    if p < 0.001:
        return "p<0.001"
    return f"p={format_number(p, 3 if p < 0.1 else 2)}"


def with_delta(value: float | None, delta: float | None) -> str:
    """ "81.55 (+3.02p)", or "81.55" without a delta, or "–" without a value."""
    if value is None:
        return NONE
    return format_number(value) if delta is None else f"{format_number(value)} ({format_signed(delta)}p)"
