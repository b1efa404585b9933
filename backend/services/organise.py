"""What a user says of runs: names, notes, tags, archive, and the priority of a queued one; each
change records who made it (the token's name) and when. A change to several runs is one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from backend.models import Run, RunStatus, RunTag, utcnow
from backend.schemas.runs import MAX_TAGS, RunUpdate
from backend.services.errors import Conflict, InvalidParameter, NotFound

# A run that may still change its results is not archived: it would train on unseen.
ARCHIVABLE = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled})


def update_runs(*, session: Session, run_ids: Sequence[int], changes: RunUpdate, updated_by: str | None) -> list[Run]:
    """Apply ``changes`` (the fields it sets) to each run, all or none. The rows are locked first, so a
    claim that holds one is waited for; a run it claimed meanwhile is running (priority: a 409)."""
    ids = list(dict.fromkeys(run_ids))
    found = {
        run.id: run for run in session.scalars(select(Run).where(Run.id.in_(ids)).order_by(Run.id).with_for_update())
    }
    missing = [run_id for run_id in ids if run_id not in found]
    if missing:
        raise NotFound(f"run {missing[0]} not found")
    runs = [found[run_id] for run_id in ids]
    fields = changes.given()
    for run in runs:
        if "priority" in fields and run.status != RunStatus.queued:
            raise Conflict(f"run {run.id} is {run.status.value}; only a queued run's priority can change")
        if changes.archived and run.status not in ARCHIVABLE:
            raise Conflict(f"run {run.id} is {run.status.value}; only a finished run can be archived (cancel it first)")
    tags = run_tags(session=session, run_ids=ids)
    now = utcnow()
    for run in runs:
        if changes.priority is not None:
            run.priority = changes.priority
        if changes.name is not None:
            run.name = changes.name
        if changes.notes is not None:
            run.notes = changes.notes
        if changes.archived is not None:
            # Archiving again keeps the first time it was archived.
            run.archived_at = (run.archived_at or now) if changes.archived else None
        kept = (set(tags[run.id]) | set(changes.add_tags)) - set(changes.remove_tags)
        if len(kept) > MAX_TAGS:
            raise InvalidParameter(
                ("body", "add_tags"), f"run {run.id} would have {len(kept)} tags; at most {MAX_TAGS}"
            )
        if fields - {"priority"}:
            # The priority is the queue's business, as created_by is: the rest is what a user says of the run.
            run.updated_by, run.updated_at = updated_by, now
    if changes.remove_tags:
        session.execute(delete(RunTag).where(RunTag.run_id.in_(ids), RunTag.tag.in_(changes.remove_tags)))
    if changes.add_tags:
        rows = [{"run_id": run_id, "tag": tag} for run_id in ids for tag in changes.add_tags]
        dialect_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(dialect_insert(RunTag).values(rows).on_conflict_do_nothing())
    session.commit()
    return runs


def update_run(*, session: Session, run_id: int, changes: RunUpdate, updated_by: str | None) -> Run:
    return update_runs(session=session, run_ids=[run_id], changes=changes, updated_by=updated_by)[0]


def run_tags(*, session: Session, run_ids: Sequence[int]) -> dict[int, list[str]]:
    """Each run's tags, sorted (an empty list for a run without any), from one query."""
    tags: dict[int, list[str]] = {run_id: [] for run_id in run_ids}
    if run_ids:
        rows = session.execute(
            select(RunTag.run_id, RunTag.tag).where(RunTag.run_id.in_(run_ids)).order_by(RunTag.run_id, RunTag.tag)
        )
        for run_id, tag in rows:
            tags[run_id].append(tag)
    return tags
