"""A grid study's factorial effects: its cells from the study's plan, their results from its runs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Run, RunStatus
from backend.reports import effects as effects_report
from backend.schemas.effects import StudyEffects
from backend.schemas.studies import Metric
from backend.schemas.study_spec import SWITCHES_BY_NAME, StudySpec
from backend.services.errors import InvalidStudy
from backend.services.studies import get_study
from backend.services.study_plan import plan_study

PENDING = (RunStatus.queued, RunStatus.running)

# Top-1 as the study table takes it: the peak epoch's (the highest valid top-1 of the run, which
# the runs table keeps), or the test pass of the kept checkpoint.
TOP1_FIELD: dict[str, str] = {"valid": "peak_valid_top1", "test": "test_top1"}


def _levels(cells: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """Each switch's values in the grid's order; the first cell is the baseline's."""
    levels: dict[str, list[Any]] = {}
    for cell in cells:
        for name, value in cell.items():
            known = levels.setdefault(name, [])
            if value not in known:
                known.append(value)
    return {name: tuple(values) for name, values in levels.items()}


def _why_missing(statuses: list[RunStatus | None], metric: Metric) -> str:
    counts = Counter("deleted" if status is None else status.value for status in statuses)
    if counts["succeeded"]:
        return f"its succeeded runs have no {metric} result"
    return "runs " + ", ".join(f"{status}: {count}" for status, count in sorted(counts.items()))


def study_effects(*, session: Session, study_id: int, metric: Metric = "valid") -> StudyEffects:
    """The grid's main effects and two-way interactions on top-1, or what cannot be estimated and why.

    The cells come from planning the stored grid again (the plan is a pure function of it), matched
    to the stored groups by key; their values are the runs' results as the study table reads them.
    """
    study = get_study(session=session, study_id=study_id)
    spec = StudySpec.of(study)
    if spec.grid is None:
        return effects_report.not_analysed(
            study_id=study.id, metric=metric, reason=f"the {spec.preset} preset is not a factorial grid"
        )
    try:
        plan = plan_study(preset=None, switches=spec.grid.switches, overrides=spec.overrides)
    except InvalidStudy as exc:
        return effects_report.not_analysed(
            study_id=study.id, metric=metric, reason=f"the study's grid no longer plans as it did ({exc})"
        )
    stored = {group.key: group for group in spec.groups if group.role == "experiment"}
    planned = [group for group in plan.groups if group.role == "experiment"]
    if [group.key for group in planned] != list(stored):
        return effects_report.not_analysed(
            study_id=study.id,
            metric=metric,
            reason="the study's groups differ from its grid as this version plans it, so its cells cannot be told",
        )

    ids = [member.run_id for group in stored.values() for member in group.runs]
    runs = {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(ids)))} if ids else {}
    field = TOP1_FIELD[metric]
    cells: list[effects_report.Cell] = []
    for group in planned:
        assert group.cell is not None, "a grid's experiment groups carry their cell"
        members = [runs.get(member.run_id) for member in sorted(stored[group.key].runs, key=lambda m: m.seed)]
        values = [
            getattr(run, field)
            for run in members
            if run is not None and run.status == RunStatus.succeeded and getattr(run, field) is not None
        ]
        missing = None if values else _why_missing([run.status if run else None for run in members], metric)
        cells.append(effects_report.Cell(group.cell, values, group=group.key, missing=missing))
    cells += [
        effects_report.Cell(skipped.cell, [], missing=f"skipped as invalid: {skipped.reason}")
        for skipped in plan.skipped
    ]

    levels = _levels([dict(cell.levels) for cell in cells])
    factors = []
    for name, switch_levels in levels.items():
        switch = SWITCHES_BY_NAME.get(name)
        label = effects_report.factor_label(name, switch_levels, switch.default if switch else None)
        factors.append(effects_report.Factor(name, switch_levels, label))
    pending = sum(run.status in PENDING for run in runs.values())
    notes = [f"{pending} runs are still queued or running: these numbers will move"] if pending else []
    return effects_report.factorial_effects(
        factors, cells, seeds=len(spec.seeds), study_id=study.id, metric=metric, notes=notes
    )
