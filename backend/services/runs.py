"""Runs as the API sees them: submit, read metrics, cancel, retry, clone, delete.

Functions take the session and commit what they change, as the worker's queue functions do.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Row, delete, func, select
from sqlalchemy.orm import Session

from backend.models import FINAL_STATUSES, MAX_ID, EpochMetric, Run, RunKind, RunStatus, RunTag, StepMetric, utcnow
from backend.reports.compare import configuration_key
from backend.reports.notes import notes_html
from backend.reports.timing import data_wait_hint
from backend.schemas.runs import RunPublic
from backend.services import idempotency, organise
from backend.services import metrics as metric_service
from backend.services.errors import Conflict, InvalidConfig, NotFound
from backend.services.schedule import batch_fit, train_size
from backend.services.weights import weights_errors
from backend.settings import Settings
from trainer.config import ConfigError, RunConfig, apply_overrides
from trainer.protocol import RunFolder

CUB_FOLDER = "CUB_200_2011"
DATA_HINT = "`tricklab data demo DIR` writes a small generated dataset"


# --- submit -----------------------------------------------------------------------------------


def create_run(
    *,
    session: Session,
    settings: Settings,
    config: dict[str, Any],
    priority: int = 0,
    study_id: int | None = None,
    overrides: frozenset[str] = frozenset(),
    created_by: str | None = None,
    sweep: dict[str, Any] | None = None,
) -> Run:
    """Validate a (partial) RunConfig, check its dataset and teacher, and queue it; ``created_by`` is
    the name of the token that asked (None on an open server). With a (validated) ``sweep``, the run
    is an LR range test of the config (``backend.services.lr_range``)."""
    run = queue_run(
        session=session,
        settings=settings,
        config=config,
        priority=priority,
        study_id=study_id,
        overrides=overrides,
        created_by=created_by,
        sweep=sweep,
    )
    session.commit()
    return run


def create_run_once(
    *,
    session: Session,
    settings: Settings,
    config: dict[str, Any],
    priority: int,
    idempotency_key: str | None,
    created_by: str | None = None,
) -> Run:
    """create_run, once per Idempotency-Key: a retry with the key returns the run the first request queued."""
    key = idempotency.Key.of("runs", idempotency_key, {"config": config, "priority": priority})
    run_id = idempotency.once(
        session,
        key,
        lambda: (
            queue_run(session=session, settings=settings, config=config, priority=priority, created_by=created_by).id
        ),
    )
    run = session.get(Run, run_id)
    if run is None:
        raise Conflict(
            f"run {run_id}, which this Idempotency-Key queued, was deleted; send the request with a new key "
            "to queue it again"
        )
    return run


def queue_run(
    *,
    session: Session,
    settings: Settings,
    config: dict[str, Any],
    priority: int = 0,
    study_id: int | None = None,
    overrides: frozenset[str] = frozenset(),
    created_by: str | None = None,
    sweep: dict[str, Any] | None = None,
) -> Run:
    """create_run without the commit: the caller commits it with what else belongs to the same change."""
    try:
        run_config = RunConfig.from_dict(config)
    except ConfigError as exc:
        raise InvalidConfig(exc.errors, overrides=overrides) from None
    values = run_config.model_dump(mode="json")
    errors: dict[str, str] = {}
    root = _inside_data_roots(values["data"]["root"], settings=settings, field="data.root", errors=errors)
    if root is not None and _check_dataset(root, given=values["data"]["root"], errors=errors):
        # Stored absolute: a worker started from another folder reads the same dataset.
        values["data"]["root"] = str(root)
    if values["model"]["weights_path"] is not None:
        weights = _inside_data_roots(
            values["model"]["weights_path"], settings=settings, field="model.weights_path", errors=errors
        )
        if weights is not None and not weights.is_file():
            errors["model.weights_path"] = f"{values['model']['weights_path']} is not a file"
        elif weights is not None:
            values["model"]["weights_path"] = str(weights)
    depends_on = _check_teacher(values["tricks"]["kd"], session=session, settings=settings, errors=errors)
    if run_config.model.weights_path is None:
        # The weights file, when given, was checked above against the data roots.
        errors.update(weights_errors([run_config]))
    if "data.root" not in errors:
        # The split of the dataset as stored: data.root made absolute above.
        stored = run_config.model_copy(
            update={"data": run_config.data.model_copy(update={"root": values["data"]["root"]})}
        )
        _check_batch(stored, settings=settings, errors=errors)
    if errors:
        raise InvalidConfig(errors, overrides=overrides)

    run = Run(
        name=run_config.name,
        kind=RunKind.training if sweep is None else RunKind.lr_range,
        sweep=sweep,
        status=RunStatus.queued,
        priority=priority,
        study_id=study_id,
        config=values,
        config_hash=RunConfig.model_validate(values).fingerprint(),
        configuration_hash=configuration_key(RunConfig.model_validate(values)),
        depends_on=depends_on,
        max_attempts=settings.max_attempts,
        created_by=created_by,
    )
    session.add(run)
    session.flush()
    return run


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _check_batch(config: RunConfig, *, settings: Settings, errors: dict[str, str]) -> None:
    """A batch of which no full step fits the training split, where the trainer trains full batches only."""
    try:
        batch_fit(config, n_train=train_size(config, data_roots=settings.data_roots)[0])
    except InvalidConfig as exc:
        errors.update(exc.errors)


def _inside_data_roots(given: str, *, settings: Settings, field: str, errors: dict[str, str]) -> Path | None:
    """``given`` resolved (through symlinks) if it lies under a data root. Messages name the path as the
    user gave it, never the server's folders."""
    path = Path(given).expanduser().resolve()
    if not _inside(path, settings.data_roots):
        errors[field] = f"{given} is outside the data roots; set TRICKLAB_DATA_ROOTS on the server to allow it"
        return None
    return path


def _check_dataset(path: Path, *, given: str, errors: dict[str, str]) -> bool:
    if not path.is_dir():
        errors["data.root"] = f"{given} does not exist; {DATA_HINT} there"
        return False
    if not ((path / CUB_FOLDER).is_dir() or (path / "images.txt").is_file()):
        errors["data.root"] = f"no {CUB_FOLDER}/ (or images.txt) in {given}; {DATA_HINT}"
        return False
    return True


def _check_teacher(kd: dict[str, Any], *, session: Session, settings: Settings, errors: dict[str, str]) -> int | None:
    """Return the teacher's run id (None for a folder or no teacher); store a folder absolute."""
    teacher = kd["teacher"]
    if teacher is None:
        return None
    if isinstance(teacher, str) and teacher.strip().isascii() and teacher.strip().isdigit():
        # A form field sends the id as text; no one names a teacher folder "12" in the server's cwd.
        # (RunConfig keeps the text under 4,096 characters, which int() reads.)
        teacher = kd["teacher"] = int(teacher.strip())
    if isinstance(teacher, int):
        run = session.get(Run, teacher) if 0 < teacher <= MAX_ID else None
        if run is None:
            errors["tricks.kd.teacher"] = f"run {teacher} not found"
        elif run.kind == RunKind.lr_range:
            errors["tricks.kd.teacher"] = f"run {teacher} is an LR range test: it keeps no model to teach with"
        elif run.status in (RunStatus.failed, RunStatus.cancelled):
            errors["tricks.kd.teacher"] = f"teacher run {teacher} ({run.name}) {run.status.value}; retry it first"
        return teacher
    path = Path(teacher).expanduser().resolve()
    if not _inside(path, [*settings.data_roots, settings.runs_dir]):
        errors["tricks.kd.teacher"] = f"{teacher} is outside the data roots and the runs folder"
    elif not (kept := RunFolder(path).kept_checkpoint).is_file():
        errors["tricks.kd.teacher"] = f"{teacher} is not a finished run folder (no {kept.relative_to(path)})"
    else:
        kd["teacher"] = str(path)
    return None


# --- read -------------------------------------------------------------------------------------


def get_run(*, session: Session, run_id: int, for_update: bool = False) -> Run:
    statement = select(Run).where(Run.id == run_id)
    if for_update:
        statement = statement.with_for_update()
    run = session.scalars(statement).one_or_none()
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return run


def epoch_summaries(*, session: Session, run_ids: Sequence[int]) -> dict[int, Row[Any, Any, Any, Any, Any]]:
    """Per run with epoch rows, from one aggregate query: the latest epoch and the means of the
    timing fields (epoch, seconds_per_epoch, images_per_s, data_wait_share)."""
    if not run_ids:
        return {}
    summaries = session.connection().execute(
        select(
            EpochMetric.run_id,
            func.max(EpochMetric.epoch).label("epoch"),
            func.avg(EpochMetric.seconds).label("seconds_per_epoch"),
            func.avg(EpochMetric.images_per_s).label("images_per_s"),
            func.avg(EpochMetric.data_wait_share).label("data_wait_share"),
        )
        .where(EpochMetric.run_id.in_(run_ids))
        .group_by(EpochMetric.run_id)
    )
    return {row.run_id: row for row in summaries}


def public_runs(*, session: Session, settings: Settings, runs: Sequence[Run]) -> list[RunPublic]:
    """RunPublic for each run, with progress and timing from one aggregate query over their epoch
    rows and the peak epoch so far from another (the one the compare table takes)."""
    ids = [run.id for run in runs]
    summaries = epoch_summaries(session=session, run_ids=ids)
    # A finished run keeps its peak in its row; only the others' are read from their epochs.
    unfinished = [run.id for run in runs if run.peak_epoch is None]
    peaks = {
        peak.run_id: {"peak_epoch": peak.epoch, "peak_valid_top1": peak.valid_top1, "peak_valid_top5": peak.valid_top5}
        for peak in metric_service.picked_epochs(session=session, run_ids=unfinished, mode="peak")
    }
    tags = organise.run_tags(session=session, run_ids=ids)
    columns = [column.key for column in Run.__table__.columns]
    public = []
    for run in runs:
        summary = summaries.get(run.id)
        share = summary.data_wait_share if summary else None
        # The loaded values straight from the instance's dict (a fifth of getattr's cost on a page of
        # 100 runs); an expired one through getattr, which loads it.
        loaded = run.__dict__
        public.append(
            RunPublic.model_validate(
                {
                    **{key: loaded[key] if key in loaded else getattr(run, key) for key in columns},
                    **peaks.get(run.id, {}),
                    "epoch": summary.epoch if summary else 0,
                    "seconds_per_epoch": summary.seconds_per_epoch if summary else None,
                    "images_per_s": summary.images_per_s if summary else None,
                    "data_wait_share": share,
                    "data_wait_hint": data_wait_hint(run.config, share),
                    "epochs": run.config["epochs"],
                    "run_dir": str(settings.run_dir(run.id)),
                    "notes_html": notes_html(run.notes),
                    "tags": tags[run.id],
                }
            )
        )
    return public


def public_run(*, session: Session, settings: Settings, run: Run) -> RunPublic:
    return public_runs(session=session, settings=settings, runs=[run])[0]


def epoch_metrics(*, session: Session, run_id: int, since: int = 0) -> list[EpochMetric]:
    get_run(session=session, run_id=run_id)
    return list(
        session.scalars(
            select(EpochMetric)
            .where(EpochMetric.run_id == run_id, EpochMetric.epoch > since)
            .order_by(EpochMetric.epoch)
        )
    )


def step_metrics(*, session: Session, run_id: int) -> list[StepMetric]:
    get_run(session=session, run_id=run_id)
    return list(session.scalars(select(StepMetric).where(StepMetric.run_id == run_id).order_by(StepMetric.step)))


# --- change state -----------------------------------------------------------------------------


def cancel_run(*, session: Session, run_id: int) -> Run:
    """A queued run is cancelled at once; a running one is flagged and its worker stops it."""
    run = get_run(session=session, run_id=run_id, for_update=True)
    if run.status in FINAL_STATUSES:
        raise Conflict(f"run {run_id} already {run.status.value}; nothing to cancel")
    if run.status == RunStatus.queued:
        run.status = RunStatus.cancelled
        run.finished_at = utcnow()
    else:
        run.cancel_requested = True
    session.commit()
    return run


def retry_run(*, session: Session, run_id: int) -> Run:
    """Queue a failed or cancelled run again; its trainer resumes from the last checkpoint."""
    run = get_run(session=session, run_id=run_id, for_update=True)
    if run.status not in (RunStatus.failed, RunStatus.cancelled):
        raise Conflict(f"run {run_id} is {run.status.value}; only failed or cancelled runs can be retried")
    if run.depends_on is not None:
        teacher = session.get(Run, run.depends_on)
        if teacher is not None and teacher.status in (RunStatus.failed, RunStatus.cancelled):
            raise Conflict(f"teacher run {teacher.id} ({teacher.name}) {teacher.status.value}; retry it first")
    elif isinstance(run.config["tricks"]["kd"]["teacher"], int):
        raise Conflict(
            f"teacher run {run.config['tricks']['kd']['teacher']} was deleted; clone this run "
            "with another tricks.kd.teacher"
        )
    run.status = RunStatus.queued
    run.cancel_requested = False
    run.training_failures = 0
    run.failure_kind = None
    run.error = None
    run.worker = None
    run.finished_at = None
    session.commit()
    return run


def clone_run(
    *,
    session: Session,
    settings: Settings,
    run_id: int,
    overrides: dict[str, Any],
    name: str | None = None,
    priority: int | None = None,
    created_by: str | None = None,
) -> Run:
    """Queue a copy of a run's config with dotted overrides (``{"tricks.label_smoothing": 0.1}``)."""
    source = get_run(session=session, run_id=run_id)
    keys = frozenset(overrides)
    try:
        values = apply_overrides(source.config, overrides)
    except ConfigError as exc:
        raise InvalidConfig(exc.errors, overrides=keys) from None
    if name is not None:
        values["name"] = name
    elif overrides and "name" not in overrides:
        changes = " ".join(f"{key}={json.dumps(value)}" for key, value in overrides.items())
        values["name"] = f"{source.name} {changes}"[:200]
    return create_run(
        session=session,
        settings=settings,
        config=values,
        priority=source.priority if priority is None else priority,
        overrides=keys,
        created_by=created_by,
    )


def delete_run(*, session: Session, settings: Settings, run_id: int) -> None:
    """Remove a run that is not running, its metric rows and its folder."""
    run = get_run(session=session, run_id=run_id, for_update=True)
    remove_runs(session=session, runs=[run])
    session.commit()
    shutil.rmtree(settings.run_dir(run_id), ignore_errors=True)


def remove_runs(*, session: Session, runs: Sequence[Run]) -> None:
    """Delete the (locked) rows of runs none of which is running or teaches a live run outside them,
    without committing; the caller commits, then removes their folders."""
    ids = [run.id for run in runs]
    for run in runs:
        if run.status == RunStatus.running:
            raise Conflict(f"run {run.id} is running; cancel it first")
    student = session.scalars(
        select(Run)
        .where(Run.depends_on.in_(ids), Run.id.not_in(ids), Run.status.in_((RunStatus.queued, RunStatus.running)))
        .limit(1)
    ).first()
    if student is not None:
        raise Conflict(f"run {student.id} ({student.status.value}) uses run {student.depends_on} as its teacher")
    # Explicit deletes, not only ON DELETE CASCADE: the rows go even where foreign keys are off.
    for table in (EpochMetric, StepMetric, RunTag):
        session.execute(delete(table).where(table.run_id.in_(ids)))
    for run in runs:
        session.delete(run)
