"""``tricklab gc``: the checkpoints of finished runs that nobody keeps, removed to free the disk.

A run's checkpoints stay when the run is queued or running (it trains from them), when it is the
teacher of a queued or running run (by id or by its folder), when it finished less than
``keep_days`` ago (TRICKLAB_GC_KEEP_DAYS), or when a user marked it to keep (``kept_by_users``).
The rest of the folder (config, metrics, result, TensorBoard events, logs) always stays: the run
keeps its figures and curves, and a retry of a failed run trains from scratch.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.models import FINAL_STATUSES, Run, RunStatus, RunTag, utcnow
from backend.services.run_files import folder_size, walk
from backend.settings import Settings
from trainer.protocol import RunFolder

LIVE = (RunStatus.queued, RunStatus.running)


@dataclass(frozen=True)
class Collected:
    run_id: int
    name: str
    checkpoint_bytes: int


@dataclass(frozen=True)
class Collection:
    removed: list[Collected]  # with ``dry_run``: what would be removed
    kept: dict[int, str]  # run id -> why its checkpoints stay, for the finished runs that have some
    dry_run: bool

    @property
    def freed_bytes(self) -> int:
        return sum(run.checkpoint_bytes for run in self.removed)


KEEP_TAG = "keep"


def kept_by_users(session: Session) -> set[int]:
    """The runs a user marked to keep: those tagged ``keep``."""
    return set(session.scalars(select(RunTag.run_id).where(RunTag.tag == KEEP_TAG)))


def live_teachers(*, session: Session, settings: Settings) -> set[int]:
    """Runs a queued or running run distils from: by id (``depends_on``), or by the folder of a run."""
    teachers: set[int] = set()
    for depends_on, config in session.execute(select(Run.depends_on, Run.config).where(Run.status.in_(LIVE))):
        if depends_on is not None:
            teachers.add(depends_on)
        teacher = config.get("tricks", {}).get("kd", {}).get("teacher")
        if isinstance(teacher, str) and Path(teacher).parent == settings.runs_dir and Path(teacher).name.isdigit():
            teachers.add(int(Path(teacher).name))
    return teachers


def collect_checkpoints(
    *, session: Session, settings: Settings, keep_days: float, dry_run: bool, now: datetime | None = None
) -> Collection:
    """Remove (or with ``dry_run`` only list) the checkpoints no one keeps; each run's new size is stored."""
    cutoff = (now or utcnow()) - timedelta(days=keep_days)
    reasons: dict[int, str] = dict.fromkeys(kept_by_users(session), "marked to keep")
    for teacher in live_teachers(session=session, settings=settings):
        reasons.setdefault(teacher, "teacher of a queued or running run")
    removed: list[Collected] = []
    kept: dict[int, str] = {}
    # Locked (PostgreSQL; SQLite's write transaction holds the whole file): a retry waits for the removal.
    runs: Sequence[tuple[int, str, datetime | None]] = session.execute(
        select(Run.id, Run.name, Run.finished_at)
        .where(Run.status.in_(FINAL_STATUSES))
        .order_by(Run.id)
        .with_for_update()
    ).all()
    for run_id, name, finished_at in runs:
        checkpoints = RunFolder(settings.run_dir(run_id)).checkpoints
        size = sum(file.size for file in walk(checkpoints))
        if not size and not checkpoints.is_dir():
            continue
        reason = reasons.get(run_id)
        if reason is None and finished_at is not None and finished_at > cutoff:
            reason = f"finished less than {keep_days:g} days ago"
        if reason is not None:
            kept[run_id] = reason
            continue
        removed.append(Collected(run_id=run_id, name=name, checkpoint_bytes=size))
        if not dry_run:
            _remove(checkpoints)
            session.execute(
                update(Run).where(Run.id == run_id).values(disk_bytes=folder_size(settings.run_dir(run_id)))
            )
    session.commit()
    return Collection(removed=removed, kept=kept, dry_run=dry_run)


def _remove(checkpoints: Path) -> None:
    """The checkpoints folder, without following a symlink out of it (rmtree removes the link itself)."""
    if checkpoints.is_symlink():
        checkpoints.unlink()
    else:
        shutil.rmtree(checkpoints, ignore_errors=True)
