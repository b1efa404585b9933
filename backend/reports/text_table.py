"""The results table for a paper: the compare or study table as cells of text, and those cells written
as Markdown or as a LaTeX booktabs table.

The cells are the texts the pages and the API write (``numbers.py``'s one delta rule and formatter:
"81.55 (+3.02p)", "+0.60p [−0.30, +1.50] p=0.21"), so a table pasted into a paper says what the
dashboard says. Every cell is escaped for the format it goes into: a run or group name is the
user's text and may hold any of LaTeX's or Markdown's special characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from backend.reports.numbers import NONE, format_number
from backend.schemas.compare import CompareRow
from backend.schemas.studies import StudyTable


@dataclass(frozen=True)
class TextTable:
    caption: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str]  # what the page says under (or above) the table
    text_columns: int = 2  # the columns of words before the numbers, which are aligned right


def _at_epoch(text: str, epoch: int | None) -> str:
    return text if epoch is None or text == NONE else f"{text} (ep. {epoch})"


def compare_table(rows: Sequence[CompareRow], *, mode: str) -> TextTable:
    """The compare page's table: valid figures at the peak or final epoch with their delta to the baseline."""
    at = "its peak epoch (the highest valid top-1)" if mode == "peak" else "its final epoch"
    body = []
    for row in rows:
        test = NONE if row.test_top1 is None else f"{format_number(row.test_top1)} / {format_number(row.test_top5)}"
        name = f"{row.name} (#{row.run_id})" + (" [baseline]" if row.is_baseline else "")
        body.append(
            [
                name,
                row.tricks,
                str(row.seed),
                NONE if row.epoch is None else str(row.epoch),
                row.top1_text,
                row.top5_text,
                _at_epoch(test, row.checkpoint_epoch),
            ]
        )
    return TextTable(
        caption=f"Validation top-1 and top-5 (%) of each run at {at}, with the difference to the baseline in "
        "points; test top-1 / top-5 of the checkpoint the trainer kept (the lowest valid loss) and its epoch.",
        columns=["Run", "Tricks", "Seed", "Epoch", "Valid top-1", "Valid top-5", "Test top-1 / top-5"],
        rows=body,
        notes=[],
    )


def study_table(table: StudyTable) -> TextTable:
    """The study page's table: mean ± std over seeds, the delta to the baseline group with its interval and p."""
    level = round(table.confidence * 100)
    # The published numbers' column, where a preset quotes any (a grid's would be empty).
    quoted = any(row.report for row in table.data)
    body = []
    for row in table.data:
        title = row.title[len(row.group) + 2 :] if row.title.startswith(f"{row.group}: ") else row.title
        name = row.group if title == row.group else f"{row.group}: {title}"
        body.append(
            [
                name + (" [baseline]" if row.is_baseline else ""),
                row.tricks,
                f"{row.succeeded}/{row.runs}",
                row.top1.text,
                row.top1.delta_text,
                row.top5.text,
                row.top5.delta_text,
                *([row.report or NONE] if quoted else []),
            ]
        )
    what = (
        "peak validation accuracy (the epoch with the highest valid top-1)"
        if table.metric == "valid"
        else ("test accuracy of the kept checkpoint (the lowest valid loss)")
    )
    notes = [
        note
        for note in (
            table.note,
            f'{table.method}, {level} % intervals over seeds; "within noise": the interval holds 0.',
            table.reference,
        )
        if note
    ]
    return TextTable(
        caption=f"Mean ± standard deviation over seeds (%) of the {what}, and the difference to the baseline "
        f'"{table.baseline}" in points with its {level} % confidence interval and p-value.',
        columns=[
            "Group",
            "Tricks",
            "Seeds done",
            "Top-1",
            f"Δ top-1 [{level} % CI]",
            "Top-5",
            f"Δ top-5 [{level} % CI]",
            *([table.reference_column or "Report (top-1)"] if quoted else []),
        ],
        rows=body,
        notes=notes,
    )


# --- Markdown -----------------------------------------------------------------------------------

# CommonMark lets a backslash escape any ASCII punctuation; these would otherwise end a cell (|), start
# emphasis, code, a link or an image (its brackets), raw HTML or an entity, math ($, on GitHub), or
# strike text through.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&$])")


def markdown_escape(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def to_markdown(table: TextTable) -> str:
    lines = [f"Table: {markdown_escape(table.caption)}", ""]
    lines.append("| " + " | ".join(map(markdown_escape, table.columns)) + " |")
    lines.append(
        "|" + "|".join("---" if index < table.text_columns else "---:" for index in range(len(table.columns))) + "|"
    )
    lines += ["| " + " | ".join(map(markdown_escape, row)) + " |" for row in table.rows]
    if table.notes:
        lines += ["", *(f"- {markdown_escape(note)}" for note in table.notes)]
    return "\n".join(lines) + "\n"


# --- LaTeX --------------------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    # After \\ a row that starts with [ or * would be read as the row end's optional argument.
    "[": "{[}",
    "]": "{]}",
    "*": "{*}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
    # The texts' typographic signs, in commands every LaTeX engine knows.
    "−": r"\textminus{}",
    "–": "--",
    "±": r"\textpm{}",
    "×": r"\texttimes{}",
    "Δ": r"$\Delta$",
    "α": r"$\alpha$",
    "·": r"\textperiodcentered{}",
}
_LATEX_PATTERN = re.compile("|".join(map(re.escape, _LATEX_SPECIAL)))


def latex_escape(text: str) -> str:
    """``text`` as LaTeX typesets it literally: each special character replaced in one pass, so no
    replacement is escaped again."""
    return _LATEX_PATTERN.sub(lambda match: _LATEX_SPECIAL[match.group()], " ".join(text.split()))


def to_latex(table: TextTable, *, label: str) -> str:
    """A booktabs table (``\\usepackage{booktabs}``; ``textcomp`` for the signs on old LaTeX)."""
    spec = "l" * table.text_columns + "r" * (len(table.columns) - table.text_columns)
    lines = [
        "% tricklab results table: needs \\usepackage{booktabs} (and textcomp before LaTeX 2020)",
        "\\begin{table}",
        "\\centering",
        f"\\caption{{{latex_escape(table.caption)}}}",
        f"\\label{{{re.sub(r'[^A-Za-z0-9:.-]', '-', label)}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_escape(column) for column in table.columns) + " \\\\",
        "\\midrule",
        *(" & ".join(latex_escape(cell) for cell in row) + " \\\\" for row in table.rows),
        "\\bottomrule",
        "\\end{tabular}",
    ]
    if table.notes:
        lines += ["\\par\\smallskip", *(f"\\footnotesize {latex_escape(note)}\\par" for note in table.notes)]
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"
