"""Studies: one action queues a named group of runs; one table says which tricks helped beyond noise.

A study's groups come from its plan (``study_plan``); every group is replicated over seeds. The
layout (groups, and per group one run per seed) is fixed when the study is created and kept in
``studies.spec``: an identical run that already succeeded is reused rather than rerun, so a run can
belong to several studies, which ``runs.study_id`` (the study that created the run) cannot say.

Functions take the session and commit what they change, as the runs service does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import EpochMetric, Run, RunStatus, Study
from backend.reports import study as study_report
from backend.schemas.studies import (
    Metric,
    StudyCurves,
    StudyGroupPublic,
    StudyPublic,
    StudyTable,
)
from backend.services import idempotency
from backend.services import runs as run_service
from backend.services.errors import Conflict, InvalidConfig, InvalidStudy, NotFound
from backend.services.study_plan import MAX_RUNS, config_of, locate_errors, plan_study
from backend.settings import Settings
from trainer.config import RunConfig, apply_overrides

# --- creating -----------------------------------------------------------------------------------


def _succeeded_twin(session: Session, fingerprint: str) -> int | None:
    return session.scalar(
        select(func.min(Run.id)).where(Run.config_hash == fingerprint, Run.status == RunStatus.succeeded)
    )


def _stored_form(config: RunConfig) -> RunConfig:
    # queue_run stores data.root and model.weights_path absolute; the fingerprint must be taken of the same.
    weights = config.model.weights_path
    return config.model_copy(
        update={
            "data": config.data.model_copy(update={"root": _absolute(config.data.root)}),
            "model": config.model.model_copy(update={"weights_path": weights and _absolute(weights)}),
        }
    )


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def create_study(
    *,
    session: Session,
    settings: Settings,
    name: str,
    overrides: Mapping[str, Any],
    seeds: int,
    preset: str | None = None,
    switches: Mapping[str, Any] | None = None,
    priority: int = 0,
) -> Study:
    """Queue a study's runs, seed-major (every group's first seed, then the second, ...), so a
    first result of every group comes before the replicates; students follow their teachers.
    The study and all its runs are stored in one transaction."""
    study = _queue_study(
        session=session,
        settings=settings,
        name=name,
        overrides=overrides,
        seeds=seeds,
        preset=preset,
        switches=switches,
        priority=priority,
    )
    session.commit()
    return study


def create_study_once(
    *,
    session: Session,
    settings: Settings,
    idempotency_key: str | None,
    name: str,
    overrides: Mapping[str, Any],
    seeds: int,
    preset: str | None = None,
    switches: Mapping[str, Any] | None = None,
    priority: int = 0,
) -> Study:
    """create_study, once per Idempotency-Key: a retry with the key returns the study the first request made."""
    request = {
        "name": name,
        "overrides": dict(overrides),
        "seeds": seeds,
        "preset": preset,
        "switches": None if switches is None else dict(switches),
        "priority": priority,
    }
    study_id = idempotency.once(
        session,
        idempotency.Key.of("studies", idempotency_key, request),
        lambda: (
            _queue_study(
                session=session,
                settings=settings,
                name=name,
                overrides=overrides,
                seeds=seeds,
                preset=preset,
                switches=switches,
                priority=priority,
            ).id
        ),
    )
    return get_study(session=session, study_id=study_id)


def _queue_study(
    *,
    session: Session,
    settings: Settings,
    name: str,
    overrides: Mapping[str, Any],
    seeds: int,
    preset: str | None,
    switches: Mapping[str, Any] | None,
    priority: int,
) -> Study:
    plan = plan_study(preset=preset, switches=switches, overrides=overrides)
    if len(plan.groups) * seeds > MAX_RUNS:
        raise InvalidStudy(
            {
                ("seeds",)
                if preset
                else (
                    "grid",
                    "switches",
                ): f"{len(plan.groups)} groups x {seeds} seeds = {len(plan.groups) * seeds} runs; at most {MAX_RUNS}"
            }
        )
    first_seed = config_of(plan.groups[0].values).seed
    seed_list = [first_seed + index for index in range(seeds)]
    if seed_list[-1] > 2**31 - 1:
        raise InvalidStudy({("seeds",): f"seeds {first_seed}..{seed_list[-1]} pass the largest seed, {2**31 - 1}"})

    study = Study(name=name, spec={})
    session.add(study)
    session.flush()
    run_of: dict[tuple[str, int], int] = {}
    members: dict[str, list[dict[str, Any]]] = {group.key: [] for group in plan.groups}
    by_fingerprint: dict[str, int] = {}
    for seed in seed_list:
        for group in plan.groups:
            values = {**group.values, "seed": seed, "name": f"{name} · {group.key} · seed {seed}"[:200]}
            if group.teacher is not None:
                values["tricks.kd.teacher"] = run_of[(group.teacher, seed)]
            fingerprint = _stored_form(config_of(values)).fingerprint()
            run_id = by_fingerprint.get(fingerprint)
            reused = False
            if run_id is None:
                run_id = _succeeded_twin(session, fingerprint)
                reused = run_id is not None
            if run_id is None:
                try:
                    run_id = run_service.queue_run(
                        session=session,
                        settings=settings,
                        config=apply_overrides({}, values),
                        priority=priority,
                        study_id=study.id,
                    ).id
                except InvalidConfig as exc:
                    # Checked by queue_run only (the dataset folder): nothing of the study is kept.
                    session.rollback()
                    raise InvalidStudy(locate_errors(exc.errors, overrides)) from None
            by_fingerprint[fingerprint] = run_id
            run_of[(group.key, seed)] = run_id
            members[group.key].append({"run_id": run_id, "seed": seed, "reused": reused})

    study.baseline_run_id = run_of[(plan.baseline, seed_list[0])]
    study.spec = {
        "kind": "preset" if preset else "grid",
        "preset": preset,
        "grid": {"switches": dict(switches)} if switches is not None else None,
        "overrides": dict(overrides),
        "seeds": seed_list,
        "priority": priority,
        "baseline": plan.baseline,
        "groups": [
            {
                "key": group.key,
                "title": group.title,
                "role": group.role,
                "teacher": group.teacher,
                "tricks": group.tricks,
                "reported_top1": group.reported[0],
                "reported_top5": group.reported[1],
                "runs": members[group.key],
            }
            for group in plan.groups
        ],
        "skipped": plan.skipped,
    }
    session.flush()
    return study


# --- reading ------------------------------------------------------------------------------------


def get_study(*, session: Session, study_id: int) -> Study:
    study = session.get(Study, study_id)
    if study is None:
        raise NotFound(f"study {study_id} not found")
    return study


def list_studies(*, session: Session, skip: int = 0, limit: int = 100) -> tuple[list[Study], int]:
    """Newest first, with the number of studies over all pages."""
    count = session.scalar(select(func.count()).select_from(Study))
    found = session.scalars(select(Study).order_by(Study.id.desc()).offset(skip).limit(limit)).all()
    return list(found), count or 0


def _run_ids(study: Study) -> list[int]:
    return list(dict.fromkeys(run["run_id"] for group in study.spec["groups"] for run in group["runs"]))


def _runs(session: Session, study: Study) -> dict[int, Run]:
    ids = _run_ids(study)
    return {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(ids)))} if ids else {}


def study_public(*, session: Session, study: Study) -> StudyPublic:
    return studies_public(session=session, studies=[study])[0]


def studies_public(*, session: Session, studies: Sequence[Study]) -> list[StudyPublic]:
    """Each study with its runs' statuses and progress; one query for the runs of all of them."""
    ids = [run_id for study in studies for run_id in _run_ids(study)]
    statuses = dict(session.execute(select(Run.id, Run.status).where(Run.id.in_(ids))).all()) if ids else {}
    return [_public(study, statuses) for study in studies]


def _public(study: Study, statuses: Mapping[int, RunStatus]) -> StudyPublic:
    """The stored spec as the API shows it, with each run's current status."""
    spec = study.spec
    groups = [
        StudyGroupPublic.model_validate(
            {**group, "runs": [{**run, "status": statuses.get(run["run_id"])} for run in group["runs"]]}
        )
        for group in spec["groups"]
    ]
    distinct = {run.run_id: run for group in groups for run in group.runs}
    progress = {status.value: 0 for status in RunStatus}
    for run in distinct.values():
        if run.status is not None:
            progress[run.status.value] += 1
    progress["deleted"] = sum(run.status is None for run in distinct.values())
    progress["total"] = len(distinct)
    progress["reused"] = sum(run.reused for run in distinct.values())
    return StudyPublic.model_validate(
        {
            **spec,
            "id": study.id,
            "name": study.name,
            "created_at": study.created_at,
            "baseline_run_id": study.baseline_run_id,
            "groups": groups,
            "progress": progress,
            "finished": progress["queued"] + progress["running"] == 0,
        }
    )


# --- the report ---------------------------------------------------------------------------------


def study_table(*, session: Session, study: Study, metric: Metric = "valid") -> StudyTable:
    """One row per group: mean +/- std over seeds, delta to the baseline with a 95 % interval and p."""
    runs = _runs(session, study)
    seconds: dict[int, float | None] = (
        dict(
            session.execute(
                select(EpochMetric.run_id, func.avg(EpochMetric.seconds))
                .where(EpochMetric.run_id.in_(list(runs)))
                .group_by(EpochMetric.run_id)
            ).all()
        )
        if runs
        else {}
    )
    return study_report.study_table(study, runs, seconds, metric=metric)


def study_curves(*, session: Session, study: Study) -> StudyCurves:
    """Per group and epoch, the mean and std over the group's runs of the four charted metrics."""
    runs = _runs(session, study)
    rows: dict[int, list[EpochMetric]] = {}
    if runs:
        for row in session.scalars(
            select(EpochMetric)
            .where(EpochMetric.run_id.in_(list(runs)))
            .order_by(EpochMetric.run_id, EpochMetric.epoch)
        ):
            rows.setdefault(row.run_id, []).append(row)
    return study_report.study_curves(study, runs, rows)


# --- changing -----------------------------------------------------------------------------------


def cancel_study(*, session: Session, study_id: int) -> Study:
    """Cancel the queued and running runs this study created; reused runs belong to others."""
    study = get_study(session=session, study_id=study_id)
    pending = session.scalars(
        select(Run.id).where(
            Run.study_id == study.id,
            Run.status.in_((RunStatus.queued, RunStatus.running)),
            Run.cancel_requested.is_(False),
        )
    ).all()
    if not pending:
        raise Conflict(f"study {study_id} has no queued or running run to cancel")
    for run_id in pending:
        run_service.cancel_run(session=session, run_id=run_id)
    return study
