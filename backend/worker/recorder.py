"""What one attempt's trainer reports, stored in the database, every write fenced by the attempt: a
run that moved on (requeued, retried, deleted) is ``lost`` and gets nothing more from this worker.

Events wait in ``pending`` while the database cannot be reached and are stored in order once it can;
step rows are batched.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from backend.db import Database
from backend.services import queue as jobs
from backend.services.run_files import folder_size
from trainer.protocol import EventType

log = logging.getLogger("tricklab.worker")

STEP_BATCH = 200
_DROPPED = "dropped"  # a write the database refused for good: the event is skipped


class AttemptRecorder:
    """One attempt of one run, as far as its trainer has told: where it resumed, its result or error,
    whether it was lost or cancelled, and the events not stored yet."""

    def __init__(
        self, *, database: Database, run_id: int, attempt: int, retry_seconds: float, run_dir: Path | None = None
    ):
        self.database = database
        self.run_dir = run_dir
        self.run_id = run_id
        self.attempt = attempt
        self.retry_seconds = retry_seconds
        self.start_epoch = 0
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.fault: str | None = None  # the error is the machine's ("no_space"), not the run's
        self.last_epoch: dict[str, Any] | None = None  # the latest epoch row stored: its memory, if killed
        self.lost = False
        self.cancel = False
        self.pending: collections.deque[dict[str, Any]] = collections.deque()
        self._retry_at = 0.0  # after a failed write, wait a tick instead of retrying at each event
        self._steps: list[dict[str, Any]] = []

    # --- events ---------------------------------------------------------------------------------

    def store_pending(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        while self.pending and not self.lost:
            event = self.pending[0]
            kind = event.get("type")
            if kind == EventType.start:
                start_epoch = int(event.get("start_epoch") or 0)
                hardware = {
                    "start_step": event.get("start_step"),
                    "world_size": event.get("world_size"),
                    "devices": event.get("devices"),
                    "fallback": event.get("fallback"),
                    "software": event.get("software"),
                }
                if self.write(jobs.record_start, start_epoch=start_epoch, **hardware) is None:
                    return  # database unreachable: retried on the next tick
                self.start_epoch = start_epoch
            elif kind == EventType.epoch:
                self.flush_steps()
                replay = int(event["epoch"]) <= self.start_epoch
                if self.write(jobs.store_epoch, row=event, replay=replay) is None:
                    return
                self.last_epoch = event
                self.record_disk_size()
            elif kind == EventType.step:
                self._steps.append(event)
                if len(self._steps) >= STEP_BATCH:
                    self.flush_steps()
            elif kind in (EventType.result, EventType.lr_range):
                self.result = event
            elif kind == EventType.error:
                self.error = str(event.get("message") or "")
                self.fault = str(event["fault"]) if event.get("fault") else None
            self.pending.popleft()

    def flush_steps(self) -> None:
        if not self._steps or self.lost or time.monotonic() < self._retry_at:
            return
        if self.write(jobs.store_steps, steps=self._steps) is not None:
            self._steps = []

    def record_disk_size(self) -> None:
        """The run folder's size, for the runs list: a few files' lengths, measured after each epoch and at
        the end of the attempt (a failed write is not retried: the next measurement replaces it)."""
        if self.run_dir is not None and not self.lost:
            self.write(jobs.record_disk_size, disk_bytes=folder_size(self.run_dir))

    def poll_cancel(self) -> None:
        requested = self.read(jobs.cancel_requested)
        self.cancel = self.cancel or bool(requested)

    def heartbeat(self) -> None:
        """Tell the queue the attempt is alive; its answer carries the cancel flag too."""
        requested = self.write(jobs.heartbeat)
        self.cancel = self.cancel or bool(requested)

    # --- fenced database calls ------------------------------------------------------------------

    def write(self, function: Callable[..., Any], **kwargs: Any) -> Any:
        """Call a fenced queue function for this attempt; None from it means the run was lost.
        Also returns None, without losing the run, when the database cannot be reached."""
        try:
            with self.database.session(write=True) as session:
                outcome = function(session=session, run_id=self.run_id, attempt=self.attempt, **kwargs)
        except OperationalError as exc:  # connection lost, database locked: the next tick tries again
            log.warning("run %s: %s failed: %s", self.run_id, function.__name__, exc)
            self._retry_at = time.monotonic() + self.retry_seconds
            return None
        except DBAPIError:  # retrying cannot help; blocking the later events would be worse
            log.exception("run %s: %s refused by the database; skipped", self.run_id, function.__name__)
            return _DROPPED
        if outcome is None:
            log.warning("run %s attempt %s: no longer ours (requeued, cancelled or deleted)", self.run_id, self.attempt)
            self.lost = True
            return None
        return outcome

    def write_patiently(self, function: Callable[..., Any], *, deadline: float, **kwargs: Any) -> Any:
        """``write``, retried while the database is unreachable, until ``deadline``."""
        while True:
            outcome = self.write(function, **kwargs)
            if outcome is not None or self.lost or time.monotonic() >= deadline:
                return outcome
            time.sleep(self.retry_seconds)

    def read(self, function: Callable[..., Any]) -> Any:
        try:
            with self.database.session() as session:
                outcome = function(session=session, run_id=self.run_id, attempt=self.attempt)
        except DBAPIError as exc:
            log.warning("run %s: %s failed: %s", self.run_id, function.__name__, exc)
            return None
        if outcome is None:
            self.lost = True
        return outcome
