"""CSV files for spreadsheets: a text cell that a spreadsheet would read as a formula stays text."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def as_text(cell: str) -> str:
    # "+LS", or a run named "=HYPERLINK(...)", is a formula to a spreadsheet; a leading quote keeps it text.
    # A bare carriage return ends a row for a spreadsheet, yet the csv module quotes only cells with "\n":
    # as "\n" the break stays inside the quoted cell, so no line after it starts a cell of its own.
    cell = cell.replace("\r\n", "\n").replace("\r", "\n")
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A header line and one line per row, in ``columns`` (other keys are left out)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: as_text(value) if isinstance(value, str) else value for key, value in row.items()})
    return out.getvalue()
