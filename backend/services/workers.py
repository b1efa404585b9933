"""The workers as they report themselves: their devices and when each was last seen.

A worker writes its row when it starts and again, at most every heartbeat interval, while it waits
for runs and while it trains one; a row not refreshed within the stale timeout is a worker that
stopped. The devices are found without importing torch: the worker process never loads it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from backend.db import Database
from backend.models import Worker, utcnow
from backend.placement import Placement
from backend.schemas.workers import DevicePublic, WorkerPublic, WorkersPublic

log = logging.getLogger("tricklab.worker")

LISTED_FOR = timedelta(days=1)
NVIDIA_SMI = ("nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits")


def visible_gpus(environ: os._Environ[str] | dict[str, str] = os.environ) -> list[dict[str, Any]]:
    """The GPUs this process may use, as (index among the visible ones, name, memory), from nvidia-smi
    and CUDA_VISIBLE_DEVICES; none when there is no NVIDIA driver."""
    try:
        listing = subprocess.run(NVIDIA_SMI, capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = {}
    for line in listing.splitlines():
        index, name, memory = (part.strip() for part in line.split(",", 2))
        gpus[index] = {"name": name, "memory_gib": round(float(memory) / 1024, 1) if memory.isdigit() else None}
    chosen = environ.get("CUDA_VISIBLE_DEVICES")
    order = list(gpus) if chosen is None else [part.strip() for part in chosen.split(",") if part.strip()]
    # CUDA stops at the first entry it cannot use; so does this list.
    visible = []
    for physical in order:
        if physical not in gpus:
            break
        visible.append({"physical": physical, **gpus[physical]})
    return [{"index": index, **gpu} for index, gpu in enumerate(visible)]


def _cpu() -> dict[str, Any]:
    cores = os.cpu_count() or 1
    return {"device": "cpu", "kind": "cpu", "name": f"{cores} CPU core{'s' if cores > 1 else ''}", "memory_gib": None}


def detect_devices(device: str | None, gpus: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """What a worker started with ``--device`` (None: auto) trains on, as DevicePublic dicts.

    ``auto`` and ``cuda`` train on the first visible GPU, or the CPU without one; ``cuda:N`` on GPU N.
    """
    if device == "cpu":
        return [_cpu()]
    gpus = visible_gpus() if gpus is None else gpus
    wanted = int(device.partition(":")[2]) if device and ":" in device else 0
    found = next((gpu for gpu in gpus if gpu["index"] == wanted), None)
    if found is None:
        return [_cpu()] if device in (None, "auto") else [{"device": device, "kind": "cuda", "name": None}]
    return [_gpu(found)]


def _gpu(found: dict[str, Any]) -> dict[str, Any]:
    return {
        "device": f"cuda:{found['index']}",
        "kind": "cuda",
        "name": found["name"],
        "memory_gib": found["memory_gib"],
    }


def placement_devices(placement: Placement, gpus: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """What a worker trains each run on: the GPUs it owns (``--gpus``), its CPU processes (``--procs``),
    or, for ``--device`` or none, as ``detect_devices`` finds it."""
    if placement.runtime_device == "cpu":
        return [_cpu() for _ in range(placement.processes)]
    if not placement.gpus:
        return detect_devices(placement.runtime_device, gpus)
    gpus = visible_gpus() if gpus is None else gpus
    owned = [gpu for gpu in gpus if gpu.get("physical") in placement.gpus]
    return [_gpu(gpu) for gpu in owned] or [
        {"device": f"cuda:{index}", "kind": "cuda", "name": None} for index in range(len(placement.gpus))
    ]


def report_worker(
    *, session: Session, name: str, devices: list[dict[str, Any]], started_at: datetime, now: datetime | None = None
) -> None:
    """Write a worker's row: its devices, and that it is alive now."""
    now = now or utcnow()
    worker = session.get(Worker, name)
    if worker is None:
        session.add(Worker(name=name, devices=devices, started_at=started_at, last_seen_at=now))
    else:
        worker.devices, worker.started_at, worker.last_seen_at = devices, started_at, now
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


class WorkerPresence:
    """A worker process's row in the registry: ``report()`` writes it at most every ``every`` seconds,
    and a database that cannot be reached costs a log line, never the run."""

    def __init__(self, *, database: Database, name: str, placement: Placement, every: float):
        self.database = database
        self.name = name
        self.devices = placement_devices(placement)
        self.every = every
        self.started_at = utcnow()
        self._next = 0.0

    def report(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every
        try:
            with self.database.session(write=True) as session:
                report_worker(session=session, name=self.name, devices=self.devices, started_at=self.started_at)
        except DBAPIError as exc:
            log.warning("worker %s: could not report itself: %s", self.name, exc)
