"""The workers as they report themselves: their devices and when each was last seen.

A worker writes its row when it starts and again, at most every heartbeat interval, while it waits
for runs and while it trains one (``backend.worker.presence``; it finds its devices in
``backend.worker.devices``); a row not refreshed within the stale timeout is a worker that stopped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Worker, utcnow
from backend.schemas.workers import DevicePublic, WorkerPublic, WorkersPublic

LISTED_FOR = timedelta(days=1)


def report_worker(
    *,
    session: Session,
    name: str,
    devices: list[dict[str, Any]],
    started_at: datetime,
    paused: str | None = None,
    now: datetime | None = None,
) -> None:
    """Write a worker's row: its devices, why it is paused (None: it is not), and that it is alive now."""
    now = now or utcnow()
    worker = session.get(Worker, name)
    if worker is None:
        session.add(Worker(name=name, devices=devices, started_at=started_at, last_seen_at=now, paused=paused))
    else:
        worker.devices, worker.started_at, worker.last_seen_at = devices, started_at, now
        worker.paused = paused
    session.commit()


def list_workers(*, session: Session, stale_after_seconds: float, now: datetime | None = None) -> WorkersPublic:
    """The workers seen in the last day, the living ones first, then the most recently seen."""
    now = now or utcnow()
    rows = session.scalars(
        select(Worker).where(Worker.last_seen_at >= now - LISTED_FOR).order_by(Worker.last_seen_at.desc())
    ).all()
    fresh = now - timedelta(seconds=stale_after_seconds)
    workers = [
        WorkerPublic(
            name=row.name,
            devices=[DevicePublic.model_validate(device) for device in row.devices],
            started_at=row.started_at,
            last_seen_at=row.last_seen_at,
            alive=row.last_seen_at >= fresh,
            paused=row.paused if row.last_seen_at >= fresh else None,
        )
        for row in rows
    ]
    workers.sort(key=lambda worker: not worker.alive)  # stable: most recently seen first within each
    alive = [worker for worker in workers if worker.alive]
    return WorkersPublic(
        data=workers,
        count=len(workers),
        alive=len(alive),
        gpus=sum(device.kind == "cuda" for worker in alive for device in worker.devices),
    )


def paused_workers(*, session: Session, stale_after_seconds: float) -> list[WorkerPublic]:
    """The living workers that claim nothing now, each with why (for the runs and run pages)."""
    fleet = list_workers(session=session, stale_after_seconds=stale_after_seconds)
    return [worker for worker in fleet.data if worker.alive and worker.paused]
