"""What a study shows: its public form with each run's status and the progress, its table and its
curves, from its stored spec (``StudySpec.of``) and its runs' rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import EpochMetric, Run, RunStatus, Study
from backend.reports import study as study_report
from backend.reports.compare import pick_epoch
from backend.schemas.studies import Metric, StudyCurves, StudyGroupPublic, StudyPublic, StudyTable
from backend.schemas.study_spec import StudySpec


def _runs(session: Session, spec: StudySpec) -> dict[int, Run]:
    ids = spec.run_ids()
    return {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(ids)))} if ids else {}


def study_public(*, session: Session, study: Study) -> StudyPublic:
    return studies_public(session=session, studies=[study])[0]


def studies_public(*, session: Session, studies: Sequence[Study]) -> list[StudyPublic]:
    """Each study with its runs' statuses and progress; one query for the runs of all of them."""
    specs = [StudySpec.of(study) for study in studies]
    ids = [run_id for spec in specs for run_id in spec.run_ids()]
    rows = (
        session.execute(select(Run.id, Run.status, Run.started_at, Run.finished_at).where(Run.id.in_(ids))).all()
        if ids
        else []
    )
    statuses = {row.id: row.status for row in rows}
    times = {row.id: (row.started_at, row.finished_at) for row in rows}
    return [_public(study, spec, statuses, times) for study, spec in zip(studies, specs, strict=True)]


def _took(spec: StudySpec, times: Mapping[int, tuple[datetime | None, datetime | None]]) -> float | None:
    """From the first start to the last end of the study's own runs (reused ones trained before it)."""
    own = [times[run.run_id] for group in spec.groups for run in group.runs if not run.reused and run.run_id in times]
    starts = [started for started, _ in own if started is not None]
    ends = [finished for _, finished in own if finished is not None]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else None


def _public(
    study: Study,
    spec: StudySpec,
    statuses: Mapping[int, RunStatus],
    times: Mapping[int, tuple[datetime | None, datetime | None]],
) -> StudyPublic:
    """The stored spec as the API shows it, with each run's current status, and its estimate beside
    the time it took."""
    groups = [
        StudyGroupPublic.model_validate(
            {
                **group.model_dump(),
                "runs": [{**run.model_dump(), "status": statuses.get(run.run_id)} for run in group.runs],
            }
        )
        for group in spec.groups
    ]
    distinct = {run.run_id: run for group in groups for run in group.runs}
    progress = {status.value: 0 for status in RunStatus}
    for run in distinct.values():
        if run.status is not None:
            progress[run.status.value] += 1
    progress["deleted"] = sum(run.status is None for run in distinct.values())
    progress["total"] = len(distinct)
    progress["reused"] = sum(run.reused for run in distinct.values())
    finished = progress["queued"] + progress["running"] == 0
    return StudyPublic.model_validate(
        {
            **spec.model_dump(mode="json"),
            "id": study.id,
            "name": study.name,
            "created_at": study.created_at,
            "created_by": study.created_by,
            "updated_by": study.updated_by,
            "updated_at": study.updated_at,
            "baseline_run_id": study.baseline_run_id,
            "groups": groups,
            "progress": progress,
            "finished": finished,
            "estimated_seconds": study.estimated_seconds,
            "estimate_basis": study.estimate_basis,
            "took_seconds": _took(spec, times) if finished else None,
            "notes": study_report.study_notes(spec),
        }
    )


def study_table(*, session: Session, study: Study, metric: Metric = "valid") -> StudyTable:
    """One row per group: mean +/- std over seeds, delta to the baseline with a 95 % interval and p."""
    spec = StudySpec.of(study)
    runs = _runs(session, spec)
    seconds: dict[int, float | None] = {}
    rows: dict[int, list[Any]] = {}
    if runs:
        seconds = dict(
            session.execute(
                select(EpochMetric.run_id, func.avg(EpochMetric.seconds))
                .where(EpochMetric.run_id.in_(list(runs)))
                .group_by(EpochMetric.run_id)
            ).all()
        )
        for row in session.execute(
            select(EpochMetric.run_id, EpochMetric.epoch, EpochMetric.valid_top1, EpochMetric.valid_top5).where(
                EpochMetric.run_id.in_(list(runs))
            )
        ):
            rows.setdefault(row.run_id, []).append(row)
    peak = {run_id: pick_epoch(epochs, "peak") for run_id, epochs in rows.items()}
    peak_epochs = {run_id: (row.valid_top1, row.valid_top5) for run_id, row in peak.items() if row is not None}
    return study_report.study_table(spec, runs, seconds, peak_epochs, study_id=study.id, metric=metric)


def study_curves(*, session: Session, study: Study) -> StudyCurves:
    """Per group and epoch, the mean and std over the group's runs of the four charted metrics."""
    spec = StudySpec.of(study)
    runs = _runs(session, spec)
    rows: dict[int, list[Any]] = {}
    if runs:
        # The charted columns alone, as plain rows (Core, not ORM objects): a study's every epoch.
        charted = (getattr(EpochMetric, name) for name in study_report.CURVE_FIELDS)
        for row in session.connection().execute(
            select(EpochMetric.run_id, EpochMetric.epoch, *charted)
            .where(EpochMetric.run_id.in_(list(runs)))
            .order_by(EpochMetric.run_id, EpochMetric.epoch)
        ):
            rows.setdefault(row.run_id, []).append(row)
    return study_report.study_curves(spec, runs, rows, study_id=study.id)
