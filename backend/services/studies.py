"""Studies: one action queues a named group of runs; one table says which tricks helped beyond noise.

A study's groups come from its plan (``study_plan``); every group is replicated over seeds
(``study_layout``). The layout is fixed when the study is created and kept in ``studies.spec`` as a
``StudySpec``. Its public form, table and curves are read in ``study_views``.

Functions take the session and commit what they change, as the runs service does; a request is the
API's own body, ``StudyCreate``.
"""

from __future__ import annotations

import contextlib
import shutil
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Run, RunStatus, Study, utcnow
from backend.schemas.studies import StudyCreate, StudyPreview
from backend.schemas.study_spec import GridSpec, StudyGroup, StudyRun, StudySpec
from backend.services import idempotency
from backend.services import runs as run_service
from backend.services import workers as worker_service
from backend.services.errors import Conflict, InvalidConfig, InvalidStudy, NotFound
from backend.services.estimates import DeviceKind, Estimate, estimate_runs
from backend.services.gpu_memory import check_memory
from backend.services.schedule import batch_fit, train_size
from backend.services.study_groups import Plan, config_of, locate_errors
from backend.services.study_layout import Member, check_weights, layout, seed_list
from backend.services.study_plan import plan_study
from backend.settings import Settings
from trainer.config import apply_overrides

# --- creating -----------------------------------------------------------------------------------


def _plan(request: StudyCreate) -> tuple[Plan, list[int]]:
    plan = plan_study(preset=request.preset, switches=request.switches, overrides=request.overrides)
    return plan, seed_list(plan, seeds=request.seeds, preset=request.preset)


def create_study(*, session: Session, settings: Settings, request: StudyCreate, created_by: str | None = None) -> Study:
    """Queue a study's runs (``study_layout.layout``) once the plan, the dataset and the weights check
    out; the study and all its runs are stored in one transaction."""
    study = _queue_study(session=session, settings=settings, request=request, created_by=created_by)
    session.commit()
    return study


def create_study_once(
    *,
    session: Session,
    settings: Settings,
    idempotency_key: str | None,
    request: StudyCreate,
    created_by: str | None = None,
) -> Study:
    """create_study, once per Idempotency-Key: a retry with the key returns the study the first request made."""
    # Hashed field by field as before the request was one object, so that a key stored then still matches.
    fingerprinted = {
        "name": request.name,
        "overrides": request.overrides,
        "seeds": request.seeds,
        "preset": request.preset,
        "switches": request.switches,
        "priority": request.priority,
    }
    study_id = idempotency.once(
        session,
        idempotency.Key.of("studies", idempotency_key, fingerprinted),
        lambda: _queue_study(session=session, settings=settings, request=request, created_by=created_by).id,
    )
    return get_study(session=session, study_id=study_id)


def _queue_study(*, session: Session, settings: Settings, request: StudyCreate, created_by: str | None) -> Study:
    plan, seeds = _plan(request)
    members = layout(session, plan, seeds, name=request.name, create=None)
    check_weights(members)
    # Kept beside the time the study takes, so users learn how far to trust the next one.
    estimate, _warnings, _workers = _estimate(
        session=session, settings=settings, plan=plan, members=members, request=request
    )

    study = Study(
        name=request.name,
        spec={},
        created_by=created_by,
        estimated_seconds=estimate.seconds if estimate.runs > estimate.untimed else None,
        estimate_basis=estimate.basis,
    )
    session.add(study)
    session.flush()

    def create(values: dict[str, Any]) -> int:
        try:
            return run_service.queue_run(
                session=session,
                settings=settings,
                config=apply_overrides({}, values),
                priority=request.priority,
                study_id=study.id,
                created_by=created_by,
            ).id
        except InvalidConfig as exc:
            # Checked by queue_run only (the dataset folder): it fails on the first run, and
            # nothing of the study is kept.
            session.rollback()
            raise InvalidStudy(locate_errors(exc.errors, request.overrides)) from None

    members = layout(session, plan, seeds, name=request.name, create=create)
    runs_of: dict[str, list[StudyRun]] = {group.key: [] for group in plan.groups}
    for member in members:
        runs_of[member.group.key].append(StudyRun(run_id=int(member.run_id), seed=member.seed, reused=member.reused))
    study.baseline_run_id = runs_of[plan.baseline][0].run_id
    study.spec = StudySpec(
        kind="preset" if request.preset else "grid",
        preset=request.preset,
        grid=GridSpec(switches=request.switches) if request.switches is not None else None,
        overrides=request.overrides,
        seeds=seeds,
        priority=request.priority,
        baseline=plan.baseline,
        groups=[
            StudyGroup(
                key=group.key,
                title=group.title,
                role=group.role,
                teacher=group.teacher,
                tricks=group.tricks,
                reported_top1=group.reported[0],
                reported_top5=group.reported[1],
                runs=runs_of[group.key],
            )
            for group in plan.groups
        ],
        skipped=plan.skipped,
    ).model_dump(mode="json")
    session.flush()
    return study


def preview_study(*, session: Session, settings: Settings, request: StudyCreate) -> StudyPreview:
    """What ``create_study`` would queue, checked as it checks (the dataset aside), and how long it
    would take on the workers there are; nothing is written."""
    plan, seeds = _plan(request)
    members = layout(session, plan, seeds, name=request.name, create=None)
    check_weights(members)
    estimate, warnings, workers = _estimate(
        session=session, settings=settings, plan=plan, members=members, request=request
    )
    distinct = {member.run_id: member for member in members}
    new = [member for member in distinct.values() if not member.reused]
    return StudyPreview(
        groups=len(plan.groups),
        seeds=seeds,
        runs=len(distinct),
        new_runs=len(new),
        reused_runs=len(distinct) - len(new),
        epochs=sum(config_of(member.values).epochs for member in new),
        skipped=len(plan.skipped),
        seconds=estimate.seconds,
        device=estimate.device,
        parallel=estimate.parallel,
        workers=workers,
        basis=estimate.basis,
        source=estimate.source,
        warnings=warnings,
    )


def _estimate(
    *, session: Session, settings: Settings, plan: Plan, members: list[Member], request: StudyCreate
) -> tuple[Estimate, list[str], int]:
    """How long the study's new runs take on the living workers, what their batch does to the
    training split (a batch of which no full step fits is refused, as queueing it would be), and how
    many workers are alive. A run whose training step no living worker's GPU holds is warned of too."""
    new = [member for member in {member.run_id: member for member in members}.values() if not member.reused]
    fleet = worker_service.list_workers(session=session, stale_after_seconds=settings.stale_after_seconds)
    device: DeviceKind = "cuda" if fleet.gpus else "cpu"
    names = {d.name for worker in fleet.data if worker.alive for d in worker.devices if d.kind == device}
    groups = {group.key: group for group in plan.groups}
    configs = [
        (
            config_of({**member.values, "tricks.kd.teacher": None}),
            config_of(groups[member.group.teacher].values).model.arch if member.group.teacher else None,
        )
        for member in new
    ]
    n_train, _ = train_size(config_of(plan.groups[0].values), data_roots=settings.data_roots)
    warnings: list[str] = []
    for config, _teacher in configs:
        try:
            warning = batch_fit(config, n_train=n_train)
        except InvalidConfig as exc:
            raise InvalidStudy(locate_errors(exc.errors, request.overrides)) from None
        if warning and warning not in warnings:
            warnings.append(warning)
    for config, teacher in configs:
        memory = check_memory(config, workers=fleet.data, teacher_arch=teacher)
        if memory and memory.warning and memory.warning not in warnings:
            warnings.append(memory.warning)
    estimate = estimate_runs(
        session=session,
        configs=configs,
        n_train=n_train,
        device=device,
        parallel=fleet.gpus if fleet.gpus else 1,
        device_names=names,
    )
    return estimate, warnings, fleet.alive


# --- reading, renaming, cancelling and deleting --------------------------------------------------------------------


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
        # A worker may end one of them meanwhile (a student whose teacher was just cancelled): it is
        # no longer pending, which is what cancelling it would have made it.
        with contextlib.suppress(Conflict):
            run_service.cancel_run(session=session, run_id=run_id)
    return study


def _reusing_studies(*, session: Session, study_id: int, run_ids: set[int]) -> dict[int, int]:
    """For each of ``run_ids`` another study lists among its runs, the first such study."""
    reused_by: dict[int, int] = {}
    for other in session.scalars(select(Study).where(Study.id != study_id).order_by(Study.id)):
        for run_id in run_ids.intersection(StudySpec.of(other).run_ids()):
            reused_by.setdefault(run_id, other.id)
    return reused_by


def rename_study(*, session: Session, study_id: int, name: str, updated_by: str | None) -> Study:
    """A new name, recorded with who gave it (the token's name; None on an open server) and when."""
    study = get_study(session=session, study_id=study_id)
    study.name = name
    study.updated_by, study.updated_at = updated_by, utcnow()
    session.commit()
    return study


def delete_study(*, session: Session, settings: Settings, study_id: int, keep_runs: bool = False) -> None:
    """Delete a study with the runs it created (their metrics and folders), all or none: a 409 while
    one of them is running or teaches a live run outside it. Runs it reused belong to the studies that
    made them and stay; runs it made that a later study reused stay too, handed to the first of those.
    With ``keep_runs`` its runs stay too, in no study."""
    study = get_study(session=session, study_id=study_id)
    own = list(session.scalars(select(Run).where(Run.study_id == study_id).order_by(Run.id).with_for_update()))
    reused_by = _reusing_studies(session=session, study_id=study_id, run_ids={run.id for run in own})
    removed = [] if keep_runs else [run for run in own if run.id not in reused_by]
    for run in own:
        if run not in removed:
            run.study_id = reused_by.get(run.id)
    run_service.remove_runs(session=session, runs=removed)
    session.delete(study)
    session.commit()
    for run in removed:
        shutil.rmtree(settings.run_dir(run.id), ignore_errors=True)
