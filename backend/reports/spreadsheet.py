"""CSV files for spreadsheets: a text cell that a spreadsheet would run as a harmful formula stays text."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# A spreadsheet reads a cell starting with one of these as a formula, or may drop the character.
ALWAYS_FORMULA = ("=", "@", "\t", "\r")
SIGNS = ("+", "-")
# A signed cell is a formula too ("+LS" reads as "=+LS"), but it can only reach outside the sheet,
# run a command or leak data through a function call ("+HYPERLINK(...)", some programs allow spaces
# before the parenthesis), a DDE link ("-cmd|..."), a reference to another sheet or file ("!", "[")
# or a quoted argument. Without any of them it is at worst an error value, and a trick label such as
# "+LS" or "+Mixup α=0.2" is worth keeping as typed.
REACHES_OUT = re.compile(r"""[(|!\[\]"'`]""")


def as_text(cell: str) -> str:
    """``cell``, with a leading quote (the spreadsheet's "this is text") when it could run as a harmful formula."""
    # A bare carriage return ends a row for a spreadsheet, yet the csv module quotes only cells with "\n":
    # as "\n" the break stays inside the quoted cell, so no line after it starts a cell of its own.
    quoted = cell.startswith(ALWAYS_FORMULA) or (cell.startswith(SIGNS) and REACHES_OUT.search(cell))
    cell = cell.replace("\r\n", "\n").replace("\r", "\n")
    return "'" + cell if quoted else cell


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A header line and one line per row, in ``columns`` (other keys are left out)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: as_text(value) if isinstance(value, str) else value for key, value in row.items()})
    return out.getvalue()
