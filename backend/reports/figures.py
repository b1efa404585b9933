"""The report's figures as Plotly figure dicts, drawn as ``frontend/static/js/charts.js`` draws them on the
compare and study pages: the offline report hands them to Plotly in the browser, and the figure export
to kaleido for SVG and PNG.

The page draws one legend outside its charts, in HTML; a figure saved on its own carries Plotly's
legend instead, one entry per configuration or group. Pure functions of the rows the services read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import plotly.colors

from backend.schemas.compare import CompareRow
from backend.schemas.effects import StudyEffects
from backend.schemas.studies import CurveBand, StudyCurves

Figure = dict[str, Any]
PALETTE: list[str] = list(plotly.colors.qualitative.Dark24)
DASHES = ("solid", "dash", "dot")
CHARTED = ("train_loss", "valid_top1", "valid_top5", "lr")
TITLES = {"train_loss": "Train loss", "valid_top1": "Valid top-1 (%)", "valid_top5": "Valid top-5 (%)"}
FigureName = Literal["train_loss", "valid_top1", "valid_top5", "lr", "effects"]
FIGURES: tuple[str, ...] = get_args(FigureName)
FASTEST_GROUP = "Learning rate of each run's fastest layer group"
# A paper column's figure: kaleido's size in CSS pixels (the PNG is drawn at twice that).
WIDTH, HEIGHT = 640, 400


def style(index: int) -> dict[str, str]:
    """A group's colour and dash by its place: the palette, then the palette again with another dash."""
    return {"color": PALETTE[index % len(PALETTE)], "dash": DASHES[(index // len(PALETTE)) % len(DASHES)]}


def plot_text(text: str) -> str:
    """Plotly reads a few tags in names as markup; entities keep a run's name literal text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _layout(title: str, x_title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 14}, "x": 0.02},
        "margin": {"l": 56, "r": 12, "t": 40, "b": 40},
        "xaxis": {"title": {"text": x_title, "standoff": 4}, "zeroline": False, "automargin": True},
        "yaxis": {"zeroline": False, "exponentformat": "e"},
        "showlegend": True,
        "legend": {"font": {"size": 10}},
        "hovermode": "closest",
        "paper_bgcolor": "white",
        "plot_bgcolor": "#e5ecf6",
        **extra,
    }


def _epoch_axis(epochs: int | None) -> dict[str, Any]:
    axis: dict[str, Any] = {"title": {"text": "epoch", "standoff": 4}, "automargin": True, "zeroline": False}
    if epochs:
        axis["range"] = [0.5, epochs + 0.5]
        if epochs <= 20:
            axis["dtick"] = 1
    return axis


def _empty(note: str) -> dict[str, Any]:
    text = {"text": note, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}
    return {"annotations": [{**text, "font": {"color": "#59636e"}}], "yaxis": {"visible": False}}


# --- a comparison: one line per run, the mean of a configuration's seeds over them -------------------------


def _seeds_text(members: Sequence[CompareRow]) -> str:
    """As the compare page's legend says it: runs that repeat a seed are repeats, not more seeds."""
    seeds = list(dict.fromkeys(row.seed for row in members))
    repeats = len(members) - len(seeds)
    if len(members) == 1:
        return f"seed {seeds[0]}"
    if not repeats:
        return f"{len(seeds)} seeds"
    if len(seeds) == 1:
        return f"{len(members)} runs of seed {seeds[0]} (repeats)"
    return f"{len(members)} runs: {len(seeds)} seeds and {'a repeat' if repeats == 1 else f'{repeats} repeats'}"


def configurations(rows: Sequence[CompareRow]) -> list[tuple[str, list[CompareRow]]]:
    """The configurations in the order of their oldest run (as the page colours them), each with its label."""
    by_key: dict[str, list[CompareRow]] = {}
    for row in sorted(rows, key=lambda row: row.run_id):
        by_key.setdefault(row.configuration, []).append(row)
    return [(f"{members[0].tricks} · {_seeds_text(members)}", members) for members in by_key.values()]


def _mean(columns: Sequence[Mapping[str, list[Any]]], field: str) -> tuple[list[Any], list[float | None]]:
    """The mean over runs at the epochs every run has reached."""
    reached = min(len(run["epoch"]) for run in columns)
    means: list[float | None] = []
    for index in range(reached):
        values = [run[field][index] for run in columns if run[field][index] is not None]
        means.append(sum(values) / len(values) if values else None)
    return list(columns[0]["epoch"][:reached]), means


def compare_figures(rows: Sequence[CompareRow], columns: Mapping[int, Mapping[str, list[Any]]]) -> dict[str, Figure]:
    """The four charts of the compare page: ``columns`` holds each run's epoch columns by run id."""
    empty_run: dict[str, list[Any]] = {name: [] for name in ("epoch", *CHARTED)}
    epochs = max((row.epochs for row in rows), default=None)
    lr_groups = {row.lr_groups for row in rows}
    lr_title = f"Learning rate of {next(iter(lr_groups))}" if len(lr_groups) == 1 else FASTEST_GROUP
    figures: dict[str, Figure] = {}
    for field in CHARTED:
        traces: list[dict[str, Any]] = []
        for index, (label, members) in enumerate(configurations(rows)):
            look = style(index)
            thin = len(members) > 1
            for row in members:
                run = columns.get(row.run_id, empty_run)
                traces.append(
                    _line(
                        f"#{row.run_id} {row.name} (seed {row.seed})",
                        label,
                        look,
                        run["epoch"],
                        run[field],
                        thin=thin,
                        legend=not thin,
                    )
                )
            if thin:
                x, y = _mean([columns.get(row.run_id, empty_run) for row in members], field)
                traces.append(_line(f"{label}: mean", label, look, x, y, thin=False, legend=True))
        empty = all(not trace["x"] for trace in traces)
        extra: dict[str, Any] = {"xaxis": _epoch_axis(epochs)}
        if empty:
            extra.update(_empty("no run has a finished epoch"))
        elif field == "lr":
            top = max((y for trace in traces for y in trace["y"] if y is not None), default=0.0)
            extra["yaxis"] = {"range": [0, top * 1.08 or 1], "exponentformat": "e", "zeroline": False}
        figures[field] = {"data": traces, "layout": _layout(TITLES.get(field, lr_title), "epoch", **extra)}
    return figures


def _line(
    name: str, group: str, look: Mapping[str, str], x: list[Any], y: list[Any], *, thin: bool, legend: bool
) -> dict[str, Any]:
    # A seed under its configuration's mean is a thin line without markers: fewer SVG elements to embed.
    return {
        "type": "scatter",
        "mode": "lines" if thin else "lines+markers",
        "x": list(x),
        "y": list(y),
        "name": plot_text(group if legend else name),
        "legendgroup": group,
        "showlegend": legend,
        "line": {"color": look["color"], "dash": look["dash"], "width": 1 if thin else 2.2},
        "opacity": 0.45 if thin else 1,
        "marker": {"size": 5},
        "hovertemplate": f"{plot_text(name)}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>",
    }


# --- a study: per group the mean in a band of ± one standard deviation ----------------------------------


def _rgba(color: str, alpha: float) -> str:
    value = int(color[1:], 16)
    return f"rgba({value >> 16}, {(value >> 8) & 255}, {value & 255}, {alpha})"


def _band(name: str, look: Mapping[str, str], band: CurveBand) -> list[dict[str, Any]]:
    """An invisible upper edge, the lower edge filled up to it, then the mean line on top."""
    upper = [None if m is None else m + (s or 0) for m, s in zip(band.mean, band.std, strict=True)]
    lower = [None if m is None else m - (s or 0) for m, s in zip(band.mean, band.std, strict=True)]
    edge: dict[str, Any] = {"type": "scatter", "mode": "lines", "x": band.epoch, "hoverinfo": "skip"}
    edge |= {"line": {"width": 0, "color": look["color"]}, "legendgroup": name, "showlegend": False}
    return [
        {**edge, "y": upper, "name": f"{plot_text(name)} +std"},
        {
            **edge,
            "y": lower,
            "name": f"{plot_text(name)} −std",
            "fill": "tonexty",
            "fillcolor": _rgba(look["color"], 0.18),
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": band.epoch,
            "y": band.mean,
            "name": plot_text(name),
            "legendgroup": name,
            "line": {"color": look["color"], "dash": look["dash"]},
            "marker": {"size": 5},
            "hovertemplate": f"{plot_text(name)}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>",
        },
    ]


def study_figures(curves: StudyCurves, order: Sequence[str]) -> dict[str, Figure]:
    """The study page's four charts; ``order`` is the study's groups in their order, which fixes each colour."""
    place = {group: index for index, group in enumerate(order)}
    figures: dict[str, Figure] = {}
    for field in CHARTED:
        traces = [
            trace
            for curve in curves.data
            for trace in _band(curve.group, style(place.get(curve.group, 0)), getattr(curve, field))
        ]
        extra: dict[str, Any] = {"xaxis": _epoch_axis(curves.epochs)}
        if all(not trace["x"] for trace in traces):
            extra.update(_empty("no finished epoch yet"))
        title = TITLES.get(field, FASTEST_GROUP)
        figures[field] = {"data": traces, "layout": _layout(title, "epoch", **extra)}
    return figures


def effects_figure(effects: StudyEffects) -> Figure | None:
    """A bar per effect with its 95 % interval (main effects first); None when nothing was estimated."""
    rows = effects.data
    if not rows:
        return None

    def reach(row: Any) -> tuple[float, float]:
        """How far the interval reaches above and below the estimate (none drawn without one)."""
        if row.ci_low is None or row.ci_high is None:
            return 0.0, 0.0
        return row.ci_high - row.estimate, row.estimate - row.ci_low

    bar = {
        "type": "bar",
        "orientation": "h",
        "x": [row.estimate for row in rows],
        "y": [plot_text(row.label) for row in rows],
        "marker": {"color": [PALETTE[0] if row.kind == "main" else PALETTE[5] for row in rows]},
        "error_x": {
            "type": "data",
            "symmetric": False,
            "color": "#1f2328",
            "thickness": 1.5,
            "width": 6,
            "array": [reach(row)[0] for row in rows],
            "arrayminus": [reach(row)[1] for row in rows],
        },
        "hovertemplate": "%{y}: %{x:.2f}p<extra></extra>",
        "name": "effect",
        "showlegend": False,
    }
    layout = _layout(
        "Main effects and two-way interactions",
        "effect on top-1 (points), 95 % interval",
        height=90 + 40 * len(rows),
        margin={"l": 120, "r": 16, "t": 40, "b": 44},
        yaxis={"autorange": "reversed", "automargin": True},
    )
    layout["xaxis"] |= {"zeroline": True, "zerolinewidth": 2}
    return {"data": [bar], "layout": layout}
