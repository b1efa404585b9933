"""The results table as Markdown and LaTeX: every special character of either is escaped, so a run or
group name is typeset as it was typed and never ends a cell, a row or the table."""

from __future__ import annotations

import re

import pytest

from backend.reports.text_table import TextTable, latex_escape, markdown_escape, to_latex, to_markdown

LATEX = {
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}
# What each escape reads back as, for a reader of the escaped text (the inverse of latex_escape).
LATEX_TOKEN = re.compile(r"\\text\w+\{\}|\\[_%&#${}]|\{[\[\]*]\}|\$\\\w+\$|--|.", re.DOTALL)
HOSTILE = r"a_b 50% R&D #1 $x$ {y} ~z^2 \end{tabular}\\ [1cm] *x |p| <q> " + '"quoted"'


@pytest.mark.parametrize(("character", "escaped"), LATEX.items())
def test_each_latex_special_character_is_escaped(character, escaped):
    assert latex_escape(f"a{character}b") == f"a{escaped}b"


def _unescape(latex: str) -> str:
    inverse = {latex_escape(character): character for character in {*LATEX, *'[]*<>|"−–±×Δα·'}}
    return "".join(inverse.get(token, token) for token in LATEX_TOKEN.findall(latex))


def test_a_hostile_name_reads_back_whole_and_leaves_no_bare_special_character():
    escaped = latex_escape(HOSTILE)
    assert _unescape(escaped) == HOSTILE
    bare = [token for token in LATEX_TOKEN.findall(escaped) if len(token) == 1 and token in "\\&%$#_{}~^[]*"]
    assert bare == []
    # An escape is made once: the braces of \textbackslash{} are not escaped again.
    assert latex_escape("\\") == r"\textbackslash{}"


def test_the_texts_signs_become_latex_commands():
    assert latex_escape("−0.51p [−40.94, +39.92] p=0.92") == r"\textminus{}0.51p {[}\textminus{}40.94, +39.92{]} p=0.92"
    assert latex_escape("64.35 ± 5.83") == r"64.35 \textpm{} 5.83"
    assert latex_escape("Δ top-1 · –") == r"$\Delta$ top-1 \textperiodcentered{} --"


def test_markdown_escapes_what_would_end_a_cell_or_format_text():
    assert markdown_escape("a|b") == r"a\|b"
    assert markdown_escape("*x* _y_ `z` [l](u) <b> ~s~ &amp; $m$") == (
        r"\*x\* \_y\_ \`z\` \[l\](u) \<b\> \~s\~ \&amp; \$m\$"
    )
    assert markdown_escape("back\\slash") == r"back\\slash"
    assert markdown_escape("two\nlines") == "two lines"


TABLE = TextTable(
    caption="Results: 100% & more",
    columns=["Run", "Tricks", "Top-1"],
    rows=[[HOSTILE, "+LS", "81.55 (+3.02p)"], ["*first", "base", "78.53"]],
    notes=["a note with _ and |"],
)


def test_the_markdown_table_keeps_its_columns_whatever_the_names():
    lines = [line for line in to_markdown(TABLE).splitlines() if line.startswith("|")]
    cells = [re.split(r"(?<!\\)\|", line)[1:-1] for line in lines]
    assert [len(row) for row in cells] == [3, 3, 3, 3]
    assert cells[2][0].strip() == markdown_escape(HOSTILE)
    assert to_markdown(TABLE).splitlines()[0] == r"Table: Results: 100% \& more"


def test_the_latex_table_is_booktabs_with_every_cell_escaped():
    latex = to_latex(TABLE, label="tab:study 3_x")
    assert "\\begin{tabular}{llr}" in latex and "\\toprule" in latex and "\\midrule" in latex
    assert "\\label{tab:study-3-x}" in latex
    assert r"\caption{Results: 100\% \& more}" in latex
    body = latex.split("\\midrule\n")[1].split("\\bottomrule")[0].splitlines()
    assert body[0] == f"{latex_escape(HOSTILE)} & +LS & 81.55 (+3.02p) \\\\"
    # After \\ a row that begins with [ or * would be its optional argument: never bare.
    assert body[1].startswith("{*}first & ")
    assert r"\footnotesize a note with \_ and \textbar{}\par" in latex
