"""How a number is written, for the API's texts; ``frontend/static/js/format.js`` is the same for the pages.

Both round a float's exact binary value half away from zero, as JavaScript's ``toFixed`` does, so
65.625 is "65.63" on every page and in every API text (Python's own formatting would say "65.62").
A minus sign is the typographic one, and a delta always carries its sign.
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
    """ "65.63", "−0.50", or "–" without a value."""
    if value is None:
        return NONE
    return str(round_half_away(value, digits)).replace("-", MINUS)


def format_signed(value: float, digits: int = DIGITS) -> str:
    """ "+3.02", "−0.60", "+0.00": a difference, whose sign is always written."""
    text = format_number(value, digits)
    return text if text.startswith(MINUS) else "+" + text


def points_between(value: float | None, baseline: float | None, digits: int = DIGITS) -> float | None:
    """``value - baseline`` between the numbers as written, so that a delta adds up on screen."""
    if value is None or baseline is None:
        return None
    return float(round_half_away(value, digits) - round_half_away(baseline, digits))


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
