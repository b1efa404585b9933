"""A worker process's row in the registry (``backend.services.workers``), kept fresh."""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import DBAPIError

from backend.db import Database
from backend.models import utcnow
from backend.placement import Placement
from backend.services.workers import report_worker
from backend.worker.devices import placement_devices

log = logging.getLogger("tricklab.worker")


class WorkerPresence:
    """``report()`` writes the row, with the devices the worker trains on, at most every ``every``
    seconds; a database that cannot be reached costs a log line, never the run."""

    def __init__(self, *, database: Database, name: str, placement: Placement, every: float):
        self.database = database
        self.name = name
        self.devices = placement_devices(placement)
        self.every = every
        self.started_at = utcnow()
        self.paused: str | None = None  # why the worker claims nothing now
        self._next = 0.0

    def pause(self, reason: str | None) -> None:
        """Say ``reason`` (None: resumed) at once, not at the next heartbeat."""
        if reason != self.paused:
            self.paused = reason
            self._next = 0.0
        self.report()

    def report(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every
        try:
            with self.database.session(write=True) as session:
                report_worker(
                    session=session,
                    name=self.name,
                    devices=self.devices,
                    started_at=self.started_at,
                    paused=self.paused,
                )
        except DBAPIError as exc:
            log.warning("worker %s: could not report itself: %s", self.name, exc)
