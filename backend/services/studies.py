"""Studies: one action queues a named group of runs; one table says which tricks helped beyond noise.

A study's groups come from its plan (``study_plan``); every group is replicated over seeds. The
layout (groups, and per group one run per seed) is fixed when the study is created and kept in
``studies.spec``: an identical run that already succeeded is reused rather than rerun, so a run can
belong to several studies, which ``runs.study_id`` (the study that created the run) cannot say.

Functions take the session and commit what they change, as the runs service does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import EpochMetric, Run, RunKind, RunStatus, Study
from backend.reports import study as study_report
from backend.reports.compare import pick_epoch
from backend.schemas.studies import (
    Metric,
    StudyCurves,
    StudyGroupPublic,
    StudyPreview,
    StudyPublic,
    StudyTable,
)
from backend.services import idempotency
from backend.services import runs as run_service
from backend.services import workers as worker_service
from backend.services.errors import Conflict, InvalidConfig, InvalidStudy, NotFound
from backend.services.estimates import DeviceKind, estimate_runs
from backend.services.schedule import preview_schedule
from backend.services.study_plan import (
    MAX_RUNS,
    GroupPlan,
    Plan,
    combination_notes,
    config_of,
    locate_errors,
    plan_study,
)
from backend.services.weights import missing_weights
from backend.settings import Settings
from trainer.config import RunConfig, apply_overrides

# --- creating -----------------------------------------------------------------------------------


def _succeeded_twin(session: Session, fingerprint: str) -> int | None:
    return session.scalar(
        select(func.min(Run.id)).where(
            Run.config_hash == fingerprint, Run.status == RunStatus.succeeded, Run.kind == RunKind.training
        )
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


@dataclass
class _Member:
    group: GroupPlan
    seed: int
    values: dict[str, Any]
    run_id: int | str  # a run id; in a preview, "planned:<fingerprint>" for a run not created
    reused: bool


def _layout(
    session: Session,
    plan: Plan,
    seed_list: Sequence[int],
    *,
    name: str,
    create: Callable[[dict[str, Any]], int] | None,
) -> list[_Member]:
    """Every (group, seed) of a study, seed-major (every group's first seed, then the second, ...),
    so a first result of every group comes before the replicates; students follow their teachers.

    A run identical to one already laid out, or to one that succeeded earlier, is shared rather
    than created. ``create`` queues a run and returns its id; without it nothing is written, and a
    run to be created stands under a placeholder (its students, whose teacher it is, are new too).
    """
    run_of: dict[tuple[str, int], int | str] = {}
    by_fingerprint: dict[str, int | str] = {}
    members: list[_Member] = []
    for seed in seed_list:
        for group in plan.groups:
            values = {**group.values, "seed": seed, "name": f"{name} · {group.key} · seed {seed}"[:200]}
            if group.teacher is not None:
                values["tricks.kd.teacher"] = run_of[(group.teacher, seed)]
            fingerprint = _stored_form(config_of(values)).fingerprint()
            run_id = by_fingerprint.get(fingerprint)
            reused = False
            if run_id is None:
                twin = _succeeded_twin(session, fingerprint)
                reused = twin is not None
                run_id = twin if twin is not None else create(values) if create else f"planned:{fingerprint}"
            by_fingerprint[fingerprint] = run_id
            run_of[(group.key, seed)] = run_id
            members.append(_Member(group, seed, values, run_id, reused))
    return members


def _seed_list(plan: Plan, *, seeds: int, preset: str | None) -> list[int]:
    if len(plan.groups) * seeds > MAX_RUNS:
        where = ("seeds",) if preset else ("grid", "switches")
        total = len(plan.groups) * seeds
        raise InvalidStudy({where: f"{len(plan.groups)} groups x {seeds} seeds = {total} runs; at most {MAX_RUNS}"})
    first_seed = config_of(plan.groups[0].values).seed
    seed_list = [first_seed + index for index in range(seeds)]
    if seed_list[-1] > 2**31 - 1:
        raise InvalidStudy({("seeds",): f"seeds {first_seed}..{seed_list[-1]} pass the largest seed, {2**31 - 1}"})
    return seed_list


def _check_weights(members: Sequence[_Member]) -> None:
    """Refuse a study whose new pretrained runs could not load their ImageNet weights, with the
    trainer's own message, before any run is queued to fail with it."""
    problems = missing_weights(config_of({**m.values, "tricks.kd.teacher": None}) for m in members if not m.reused)
    if not problems:
        return
    errors: dict[tuple[str, ...], str] = {}
    if path := problems.pop("model.weights_path", None):
        errors[("overrides", "model.weights_path")] = path
    if problems:
        errors[("overrides",)] = " ".join(problems.values()) + " Or train from scratch: model.pretrained = false."
    raise InvalidStudy(errors)


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
    created_by: str | None = None,
) -> Study:
    """Queue a study's runs (``_layout``) once the plan, the dataset and the weights check out; the
    study and all its runs are stored in one transaction."""
    study = _queue_study(
        session=session,
        settings=settings,
        name=name,
        overrides=overrides,
        seeds=seeds,
        preset=preset,
        switches=switches,
        priority=priority,
        created_by=created_by,
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
    created_by: str | None = None,
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
                created_by=created_by,
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
    created_by: str | None,
) -> Study:
    plan = plan_study(preset=preset, switches=switches, overrides=overrides)
    seed_list = _seed_list(plan, seeds=seeds, preset=preset)
    _check_weights(_layout(session, plan, seed_list, name=name, create=None))

    study = Study(name=name, spec={}, created_by=created_by)
    session.add(study)
    session.flush()

    def create(values: dict[str, Any]) -> int:
        try:
            return run_service.queue_run(
                session=session,
                settings=settings,
                config=apply_overrides({}, values),
                priority=priority,
                study_id=study.id,
                created_by=created_by,
            ).id
        except InvalidConfig as exc:
            # Checked by queue_run only (the dataset folder): it fails on the first run, and
            # nothing of the study is kept.
            session.rollback()
            raise InvalidStudy(locate_errors(exc.errors, overrides)) from None

    members = _layout(session, plan, seed_list, name=name, create=create)
    runs_of: dict[str, list[dict[str, Any]]] = {group.key: [] for group in plan.groups}
    for member in members:
        runs_of[member.group.key].append({"run_id": member.run_id, "seed": member.seed, "reused": member.reused})
    study.baseline_run_id = next(
        int(member.run_id) for member in members if member.group.key == plan.baseline and member.seed == seed_list[0]
    )
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
                "runs": runs_of[group.key],
            }
            for group in plan.groups
        ],
        "skipped": plan.skipped,
    }
    session.flush()
    return study


def preview_study(
    *,
    session: Session,
    settings: Settings,
    name: str,
    overrides: Mapping[str, Any],
    seeds: int,
    preset: str | None = None,
    switches: Mapping[str, Any] | None = None,
) -> StudyPreview:
    """What ``create_study`` would queue, checked as it checks (the dataset aside), and how long it
    would take on the workers there are; nothing is written."""
    plan = plan_study(preset=preset, switches=switches, overrides=overrides)
    seed_list = _seed_list(plan, seeds=seeds, preset=preset)
    members = _layout(session, plan, seed_list, name=name, create=None)
    _check_weights(members)
    distinct = {member.run_id: member for member in members}
    new = [member for member in distinct.values() if not member.reused]
    fleet = worker_service.list_workers(session=session, stale_after_seconds=settings.stale_after_seconds)
    device: DeviceKind = "cuda" if fleet.gpus else "cpu"
    groups = {group.key: group for group in plan.groups}
    configs = [
        (
            config_of({**member.values, "tricks.kd.teacher": None}),
            config_of(groups[member.group.teacher].values).model.arch if member.group.teacher else None,
        )
        for member in new
    ]
    n_train = preview_schedule(config=apply_overrides({}, plan.groups[0].values), data_roots=settings.data_roots)[
        "n_train"
    ]
    estimate = estimate_runs(
        session=session, configs=configs, n_train=n_train, device=device, parallel=fleet.gpus if fleet.gpus else 1
    )
    return StudyPreview(
        groups=len(plan.groups),
        seeds=seed_list,
        runs=len(distinct),
        new_runs=len(new),
        reused_runs=len(distinct) - len(new),
        epochs=sum(config.epochs for config, _ in configs),
        skipped=len(plan.skipped),
        seconds=estimate.seconds,
        device=estimate.device,
        parallel=estimate.parallel,
        workers=fleet.alive,
        basis=estimate.basis,
    )


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
            "created_by": study.created_by,
            "baseline_run_id": study.baseline_run_id,
            "groups": groups,
            "progress": progress,
            "finished": progress["queued"] + progress["running"] == 0,
            "notes": combination_notes(spec),
        }
    )


# --- the report ---------------------------------------------------------------------------------


def study_table(*, session: Session, study: Study, metric: Metric = "valid") -> StudyTable:
    """One row per group: mean +/- std over seeds, delta to the baseline with a 95 % interval and p."""
    runs = _runs(session, study)
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
    best = {run_id: pick_epoch(epochs, "best") for run_id, epochs in rows.items()}
    best_epochs = {run_id: (row.valid_top1, row.valid_top5) for run_id, row in best.items() if row is not None}
    return study_report.study_table(study, runs, seconds, best_epochs, metric=metric)


def study_curves(*, session: Session, study: Study) -> StudyCurves:
    """Per group and epoch, the mean and std over the group's runs of the four charted metrics."""
    runs = _runs(session, study)
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
