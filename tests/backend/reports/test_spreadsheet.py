"""The CSV guard: cells a spreadsheet would run as a harmful formula stay text; trick labels stay as typed."""

from __future__ import annotations

import csv
import io

import pytest

from backend.reports.spreadsheet import as_text, to_csv


@pytest.mark.parametrize(
    "label", ["+LS", "+Cosine +LS", "-LS +KD", "+Mixup α=0.2", "+LS 0.05", "+Warmup 1ep", "+KD from T-LS", "base"]
)
def test_trick_labels_and_ordinary_names_are_kept_as_typed(label):
    assert as_text(label) == label


@pytest.mark.parametrize(
    "cell",
    [
        "=1+1",
        "@SUM(A1:A2)",
        '+HYPERLINK("http://example.org")',
        '+HYPERLINK ("http://example.org")',
        "-2+3+cmd|' /C calc'!A0",
        "+'[book.xlsx]Sheet1'!A1",
        "\tx",
        "\rx",
    ],
)
def test_formulas_that_reach_outside_the_sheet_are_quoted(cell):
    # A carriage return becomes a line break inside the quoted cell (see the CSV tests).
    assert as_text(cell) == "'" + cell.replace("\r", "\n")


def test_a_csv_keeps_numbers_and_guards_text():
    text = to_csv([{"group": "+LS", "name": "=cmd|x", "mean": 1.5}], ("group", "name", "mean"))
    assert list(csv.DictReader(io.StringIO(text))) == [{"group": "+LS", "name": "'=cmd|x", "mean": "1.5"}]
