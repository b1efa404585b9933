"""A sweep as a report, written as a study's is (``reports.document``: the offline HTML file, Markdown,
LaTeX, each figure as SVG or PNG): what it searched, the verdict with its confirmation table, every trial
with its parameters, objective and pruned rung, the sweep page's figures, and where the runs came from.

The tables and figures come from the same services as the sweep page's JSON (``sweep_views``), so the
report says what the page says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Run, SweepRun, SweepTrial
from backend.reports import sweep_tables
from backend.reports.document import FIGURE_TITLES, Report
from backend.reports.provenance import configuration_differences, fallback_notes, run_provenance
from backend.schemas.sweep_spec import ChoiceParam, NoPruner, SweepSpec
from backend.schemas.sweeps import SweepPublic
from backend.services import sweep_views
from backend.services.reports import file_stem
from backend.services.sweep_plan import seeds
from backend.services.sweeps import get_sweep
from backend.settings import Settings

FigureName = Literal["history", "parallel", "slice", "importance"]
FIGURES: tuple[str, ...] = get_args(FigureName)


def _space(spec: SweepSpec) -> str:
    parts = []
    for key, param in spec.space.items():
        if isinstance(param, ChoiceParam):
            parts.append(f"{key}: one of {', '.join(map(str, param.values))}")
        else:
            parts.append(f"{key}: {param.type} {param.low:g} to {param.high:g}" + (" (log)" if param.log else ""))
    return "; ".join(parts)


def _design(spec: SweepSpec) -> list[tuple[str, str]]:
    objective = spec.objective_info
    sampler = spec.sampler.name + (f" (seed {spec.sampler.seed})" if spec.sampler.seed is not None else "")
    pruner = spec.pruner.model_dump(exclude={"name"})
    pruning = spec.pruner.name + (
        "" if isinstance(spec.pruner, NoPruner) else " (" + ", ".join(f"{k} {v}" for k, v in pruner.items()) + ")"
    )
    budget = f"{spec.budget.trials} trials, {spec.budget.parallel} at once" + (
        f", none queued after {spec.budget.minutes:g} minutes of running" if spec.budget.minutes else ""
    )
    confirm = (
        f"the best {spec.confirm.top} rerun over seeds {', '.join(map(str, seeds(spec, confirm=True)))}"
        if spec.confirm
        else "none: the verdict weighs the search seeds"
    )
    return [
        ("Space", _space(spec)),
        ("Objective", f"{objective.title}, {'maximized' if objective.direction == 'maximize' else 'minimized'}"),
        ("Search", f"{sampler} sampler, {pruning} pruner; seeds {', '.join(map(str, seeds(spec)))} per trial"),
        ("Budget", budget),
        ("Confirmation", confirm),
    ]


def _shown(public: SweepPublic) -> list[int]:
    """The trials whose configurations the report sets side by side: the verdict's, else the best."""
    if public.conclusion and public.conclusion["rows"]:
        return [row["number"] for row in public.conclusion["rows"]]
    return [] if public.best is None else [public.best]


def sweep_report(*, session: Session, settings: Settings, sweep_id: int) -> Report:
    """The sweep's report; NotFound for no sweep."""
    sweep = get_sweep(session=session, sweep_id=sweep_id)
    public = sweep_views.sweep_public(session=session, sweep=sweep)
    spec = public.spec
    figures = sweep_views.sweep_figures(session=session, settings=settings, sweep=sweep)
    objective = spec.objective_info.title
    links = session.execute(
        select(SweepTrial.number, Run)
        .join(SweepRun, SweepRun.trial_id == SweepTrial.id)
        .join(Run, Run.id == SweepRun.run_id)
        .where(SweepTrial.sweep_id == sweep_id)
        .order_by(Run.id)
    ).all()
    runs_of: dict[int, list[Run]] = {}
    for number, run in links:
        runs_of.setdefault(number, []).append(run)
    shown = [number for number in _shown(public) if runs_of.get(number)]
    groups = [(f"#{number}", [run.id for run in runs_of[number]], runs_of[number][0].config) for number in shown]
    provenance = [run_provenance(run) for _number, run in links]
    counts = ", ".join(f"{count} {state}" for state, count in sorted(public.counts.items())) or "no trial yet"
    created = f"{sweep.created_at:%Y-%m-%d %H:%M} UTC" + (f" by {sweep.created_by}" if sweep.created_by else "")
    return Report(
        title=f"Sweep #{sweep.id}: {sweep.name}",
        kind="sweep",
        stem=file_stem("sweep", sweep.id, sweep.name),
        facts=[
            *_design(spec),
            ("Progress", f"{public.status.value}; {len(public.trials)} of {public.budget} trials ({counts})"),
            ("Created", created),
            *(
                [("Baseline", f"#{shown[0]}, the best configuration, which the others are set against")]
                if shown
                else []
            ),
        ],
        table=sweep_tables.confirmation_table(
            public.conclusion,
            objective=objective,
            seeds_text="each configuration's seeds, its search's and its confirmation's",
        ),
        figures={name: figure for name in FIGURES if (figure := getattr(figures, name)) is not None},
        effects_sentence=None,
        footnotes=[f"{FIGURE_TITLES[name]}: {note}" for name, note in figures.notes.items()],
        differences=configuration_differences(groups, groups[0][2], groups[0][0]) if groups else [],
        provenance=provenance,
        provenance_notes=fallback_notes(provenance),
        generated_at=datetime.now(UTC),
        verdict=public.conclusion["text"] if public.conclusion else None,
        more_tables=[("Trials", sweep_tables.trials_table(public.trials, objective=objective, best=public.best))],
    )
