"""A study or a compare selection as a report: what its page shows (the table, the four figures, the
effects chart, the notes), each configuration's differences from the baseline and where its runs came
from, read once and handed to the writers (HTML, Markdown, LaTeX, one figure as SVG or PNG).

The table and the figures come from the same services as the pages' JSON (``compare_runs``,
``study_views``, ``effects``), so a report says what the page says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Run
from backend.reports import figures as figure_report
from backend.reports import text_table
from backend.reports.document import Report
from backend.reports.provenance import configuration_differences, fallback_notes, run_provenance
from backend.schemas.compare import Mode
from backend.schemas.studies import Metric
from backend.schemas.study_spec import StudySpec
from backend.services import effects as effect_service
from backend.services import metrics as metric_service
from backend.services import study_views
from backend.services.compare import compare_runs
from backend.services.errors import NotFound
from backend.services.studies import get_study


def file_stem(*parts: object) -> str:
    """A file name from what the report shows ("study-3-seed-study"), as the pages name saved charts."""
    joined = "-".join(str(part) for part in parts if part not in (None, ""))
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", joined)
    return re.sub(r"-{2,}", "-", stem).strip("-.")[:80] or "tricklab"


def _runs(session: Session, run_ids: Sequence[int]) -> dict[int, Run]:
    return {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(run_ids)))} if run_ids else {}


def _columns(session: Session, run_ids: Sequence[int]) -> dict[int, dict[str, list[Any]]]:
    """Each run's charted epoch columns, as the compare page fetches them (/metrics/columns)."""
    answer = metric_service.metric_columns(session=session, run_ids=run_ids, fields=",".join(figure_report.CHARTED))
    assert answer.body is not None, "asked without If-None-Match"
    return {run.pop("run_id"): run for run in orjson.loads(answer.body)["data"]}


def compare_report(*, session: Session, run_ids: Sequence[int], baseline: int | None, mode: Mode) -> Report:
    """The compare page's table and figures for ``run_ids``; NotFound when none of them exists."""
    comparison = compare_runs(session=session, run_ids=run_ids, baseline=baseline, mode=mode)
    present = [row.run_id for row in comparison.rows]
    runs = _runs(session, present)
    groups = figure_report.configurations(comparison.rows)
    base_label = next(label for label, members in groups if any(row.is_baseline for row in members))
    base_run = runs[comparison.baseline]
    footnotes = [
        "Peak epoch: the epoch with the highest validation top-1, the earliest on a tie (the report's figure). "
        "Test figures come from the checkpoint the trainer kept: the epoch with the lowest validation loss.",
        "A delta is the difference of the unrounded figures, rounded once where it is written.",
    ]
    provenance = [run_provenance(runs[run_id]) for run_id in present]
    if comparison.missing:
        footnotes.append(f"Runs {', '.join(f'#{i}' for i in comparison.missing)} no longer exist and are left out.")
    footnotes += [f"#{row.run_id} {row.name}: {row.data_wait_hint}" for row in comparison.rows if row.data_wait_hint]
    return Report(
        title=f"Comparison of {len(present)} run{'s' if len(present) != 1 else ''}",
        kind="compare",
        stem=file_stem("compare", "-".join(map(str, present)) if len(present) <= 6 else f"{len(present)}-runs"),
        facts=[
            ("Runs", ", ".join(f"#{row.run_id} {row.name}" for row in comparison.rows)),
            ("Baseline", f"#{base_run.id} {base_run.name}"),
            ("Valid figures at", "each run's peak epoch" if mode == "peak" else "each run's final epoch"),
        ],
        table=text_table.compare_table(comparison.rows, mode=mode),
        figures=figure_report.compare_figures(comparison.rows, _columns(session, present)),
        effects_sentence=None,
        footnotes=footnotes,
        differences=configuration_differences(
            [(label, [row.run_id for row in members], runs[members[0].run_id].config) for label, members in groups],
            base_run.config,
            base_label,
        ),
        provenance=provenance,
        provenance_notes=fallback_notes(provenance),
        generated_at=datetime.now(UTC),
    )


def study_report(*, session: Session, study_id: int, metric: Metric = "valid") -> Report:
    """The study page's table (by ``metric``), mean curves, effects chart and notes; NotFound for no study."""
    study = get_study(session=session, study_id=study_id)
    spec = StudySpec.of(study)
    public = study_views.study_public(session=session, study=study)
    table = study_views.study_table(session=session, study=study, metric=metric)
    curves = study_views.study_curves(session=session, study=study)
    effects = effect_service.study_effects(session=session, study_id=study_id, metric=metric)
    runs = _runs(session, spec.run_ids())
    figures = figure_report.study_figures(curves, [group.key for group in spec.groups])
    effects_figure = figure_report.effects_figure(effects)
    if effects_figure is not None:
        figures["effects"] = effects_figure
    base = spec.baseline_group
    base_config = next((runs[run.run_id].config for run in base.runs if run.run_id in runs), None)
    groups = [
        (group.key, [run.run_id for run in group.runs], runs[group.runs[0].run_id].config)
        for group in spec.groups
        if group.runs and group.runs[0].run_id in runs
    ]
    switches = spec.grid.switches if spec.grid else {}
    design = f'preset "{spec.preset}"' if spec.kind == "preset" else "grid over " + ", ".join(switches)
    overrides = " ".join(f"{key}={orjson.dumps(value).decode()}" for key, value in spec.overrides.items())
    facts = [
        ("Design", f"{design}; {len(spec.groups)} groups × seeds {', '.join(map(str, spec.seeds))}"),
        ("Baseline", f'group "{spec.baseline}"'),
        ("Accuracy", "peak epoch: highest valid top-1" if metric == "valid" else "test of the kept checkpoint"),
        (
            "Progress",
            f"{sum(public.progress[s] for s in ('succeeded', 'failed', 'cancelled'))} of "
            f"{public.progress['total']} runs finished ({public.progress['succeeded']} succeeded)",
        ),
        ("Created", f"{study.created_at:%Y-%m-%d %H:%M} UTC" + (f" by {study.created_by}" if study.created_by else "")),
    ]
    if overrides:
        facts.insert(1, ("Overrides", overrides))
    provenance = [run_provenance(runs[run_id]) for run_id in dict.fromkeys(spec.run_ids()) if run_id in runs]
    notes = [*public.notes, *effects.notes]
    notes += [f"{cell.group or orjson.dumps(cell.cell).decode()}: {cell.reason}" for cell in effects.missing_cells]
    return Report(
        title=f"Study #{study.id}: {study.name}",
        kind="study",
        stem=file_stem("study", study.id, study.name),
        facts=facts,
        table=text_table.study_table(table),
        figures=figures,
        effects_sentence=effects.sentence if spec.grid is not None else None,
        footnotes=notes,
        differences=configuration_differences(groups, base_config, base.key) if base_config is not None else [],
        provenance=provenance,
        provenance_notes=fallback_notes(provenance),
        generated_at=datetime.now(UTC),
    )


def report_figure(report: Report, name: str) -> dict[str, Any]:
    """One figure of ``report`` by its name; NotFound naming the ones it has."""
    if name not in report.figures:
        known = ", ".join(report.figures)
        raise NotFound(f"figure {name!r} not found; this report has {known}")
    return report.figures[name]
