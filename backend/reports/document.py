"""A study, a comparison or a sweep as one self-contained HTML file: it opens from disk, offline, and
draws its figures with the Plotly bundle the dashboard serves, inlined once; and its tables as Markdown
or LaTeX.

The file carries its own Content-Security-Policy: its two scripts (Plotly, and the few lines that
draw the figures) run by their hashes, and nothing may be fetched from anywhere. The run and group
names in it are the users' text, escaped by the template; the figures travel as JSON in a data block.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jinja2
import plotly

from backend.reports import text_table
from backend.reports.figures import Figure
from backend.reports.provenance import ConfigurationDifferences, RunProvenance
from backend.reports.text_table import TextTable

PLOTLY_BUNDLE = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
TEMPLATES = Path(__file__).resolve().parents[2] / "frontend" / "templates"
FIGURE_TITLES = {
    "train_loss": "Train loss",
    "valid_top1": "Valid top-1",
    "valid_top5": "Valid top-5",
    "lr": "Learning rate",
    "effects": "Factorial effects",
    "history": "Objective per trial, with the best so far",
    "parallel": "Parallel coordinates",
    "slice": "Slice plots",
    "importance": "Parameter importance (PED-ANOVA)",
}
KINDS = {"study": "Study", "compare": "Comparison", "sweep": "Sweep"}
# Draws each figure of the data block into its box; the same chart options as the pages (charts.js):
# no link to Plotly's cloud, and the camera button names the file for what it shows.
DRAW = """
const report = JSON.parse(document.getElementById("report-figures").textContent);
for (const [name, figure] of Object.entries(report.figures)) {
  Plotly.newPlot(`figure-${name}`, figure.data, figure.layout, {
    responsive: true, displaylogo: false, showSendToCloud: false, plotlyServerURL: "",
    toImageButtonOptions: { format: "png", filename: `${report.stem}-${name}` },
  });
}
""".strip()


@dataclass(frozen=True)
class Report:
    title: str
    kind: str  # "study", "compare" or "sweep"
    stem: str  # what its files are named: "study-3-seed-study", "compare-1-2-3", "sweep-2-lr"
    facts: list[tuple[str, str]]  # what it is: its design, its baseline, the figures' epoch
    table: TextTable
    figures: dict[str, Figure]
    effects_sentence: str | None
    footnotes: list[str]
    differences: list[ConfigurationDifferences]
    provenance: list[RunProvenance]
    provenance_notes: list[str]  # what the provenance table would repeat in every row, said once
    generated_at: datetime
    verdict: str | None = None  # a sweep's: whether a winner stands out of the noise
    # Tables after the results, each under its heading: a sweep's trials.
    more_tables: list[tuple[str, TextTable]] = field(default_factory=list)


def _tables(report: Report) -> list[TextTable]:
    """Its tables in order; the verdict, where there is one, is the first table's first note."""
    first = report.table
    if report.verdict is not None:
        first = replace(first, notes=[f"Verdict: {report.verdict}", *first.notes])
    return [first, *(table for _title, table in report.more_tables)]


def render_markdown(report: Report) -> str:
    return "\n".join(text_table.to_markdown(table) for table in _tables(report))


def render_latex(report: Report) -> str:
    """Each table labelled ``tab:STEM``, the ones after the first ``tab:STEM-2`` and on."""
    return "\n".join(
        text_table.to_latex(table, label=f"tab:{report.stem}" + (f"-{index}" if index > 1 else ""))
        for index, table in enumerate(_tables(report), start=1)
    )


def tricklab_version() -> str:
    try:
        return version("tricklab")
    except PackageNotFoundError:  # a checkout run without installing it
        return "unknown (not installed)"


@functools.cache
def _plotly() -> tuple[str, str]:
    """The bundle's text, safe inside a script element, and its CSP hash."""
    text = PLOTLY_BUNDLE.read_text(encoding="utf-8").replace("</script", "<\\/script")
    return text, _hash(text)


def _hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


@functools.cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    return environment.get_template("report.html")


def _when(moment: datetime | None) -> str:
    return "–" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def render_html(report: Report) -> str:
    bundle, bundle_hash = _plotly()
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src {bundle_hash} {_hash(DRAW)}",
            "style-src 'unsafe-inline'",
            "img-src data: blob:",
            "font-src data:",
            "base-uri 'none'",
            "form-action 'none'",
        )
    )
    context: dict[str, Any] = {
        "report": report,
        "policy": policy,
        "plotly": bundle,
        "draw": DRAW,
        "data": {"stem": report.stem, "figures": report.figures},
        "figure_titles": FIGURE_TITLES,
        "kinds": KINDS,
        "version": tricklab_version(),
        "plotly_version": plotly.__version__,
        "when": _when,
    }
    return _template().render(context)
