"""The claim loop: a worker claims a run, starts its trainer child, watches it (storing its events,
heartbeating, polling the cancel flag) until it ends, records the end, and claims the next."""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from backend import migrate
from backend.db import Database
from backend.models import FailureKind
from backend.placement import Placement, hold_gpus
from backend.services import queue as jobs
from backend.settings import Settings
from backend.worker import disk
from backend.worker.child import TrainerChild
from backend.worker.devices import check_cuda
from backend.worker.launch import prepare_attempt, trainer_command
from backend.worker.outcome import record_outcome
from backend.worker.presence import WorkerPresence
from backend.worker.recorder import AttemptRecorder
from trainer.config import ConfigError
from trainer.forked import ForkServerProcess, forkable_argv
from trainer.protocol import FAULT_DATA_ROOT, FAULT_NO_SPACE, data_root_readable

log = logging.getLogger("tricklab.worker")


class Worker:
    """A worker on its ``placement``'s devices, named ``host:pid[:label]`` in the registry and in each
    run it claims."""

    uses_fork_server = True

    def __init__(
        self, *, settings: Settings, database: Database, placement: Placement | None = None, name: str | None = None
    ):
        self.settings = settings
        self.db = database
        self.placement = placement or Placement()
        label = self.placement.label
        self.name = name or f"{socket.gethostname()}:{os.getpid()}" + (f":{label}" if label else "")
        self._stop = threading.Event()
        # Free bytes required after a write found the disk full: more than then, whatever the estimate.
        self._free_floor = 0
        self._data_root_gone: str | None = None  # a data root that vanished mid-run, until it is back
        self.child: TrainerChild | None = None  # the current attempt's trainer
        self._fork_server: ForkServerProcess | None = None
        self.presence = WorkerPresence(
            database=database, name=self.name, placement=self.placement, every=settings.heartbeat_seconds
        )

    def serve(self, *, once: bool = False, exit_when_idle: bool = False) -> int:
        """Claim and run until stopped; ``once``: one run at most; ``exit_when_idle``: until the
        queue has nothing to claim."""
        migrate.upgrade(self.db)
        log.info("worker %s ready (runs in %s)", self.name, self.settings.runs_dir)
        forks = self.uses_fork_server and forkable_argv(self.settings.trainer_command) is not None
        if self.settings.fork_server == "auto" and forks:
            self._fork_server = ForkServerProcess()
        try:
            return self._claim_until_stopped(once=once, exit_when_idle=exit_when_idle)
        finally:
            if self._fork_server is not None:
                self._fork_server.stop()

    def _claim_until_stopped(self, *, once: bool, exit_when_idle: bool) -> int:
        while not self._stop.is_set():
            self.presence.report()
            if not self._room_for_next_run():
                self._stop.wait(self.settings.poll_seconds)
                continue
            try:
                claim = jobs.claim_if_any(
                    database=self.db, worker=self.name, stale_after_seconds=self.settings.stale_after_seconds
                )
            except DBAPIError as exc:
                log.warning("claim failed, retrying: %s", exc)
                self._stop.wait(self.settings.poll_seconds)
                continue
            if claim is not None:
                self.execute(claim)
            if once or (claim is None and exit_when_idle):
                break
            if claim is None:
                self._stop.wait(self.settings.poll_seconds)
        return 0

    def _room_for_next_run(self) -> bool:
        """Whether the runs folder has room for the run a claim would take; while it has not, the worker
        claims nothing and its registry row says why, until space returns."""
        try:
            with self.db.session() as session:
                upcoming = jobs.next_claim_config(session=session)
        except DBAPIError:
            return True  # the claim that follows waits the database out
        reason = None
        if self._data_root_gone is not None:
            if data_root_readable(self._data_root_gone):
                self._data_root_gone = None
            else:
                reason = f"the data root {self._data_root_gone} cannot be read (unmounted or removed?)"
        if reason is None and upcoming is not None:
            run_id, config = upcoming
            run_dir = self.settings.run_dir(run_id)
            reason = disk.shortage(self.settings.runs_dir, run_dir, config, at_least=self._free_floor)
        if reason is not None and self.presence.paused is None:
            log.warning("worker %s paused: %s", self.name, reason)
        elif reason is None and self.presence.paused is not None:
            log.info("worker %s resumed: %s is resolved", self.name, self.presence.paused)
            self._free_floor = 0
        self.presence.pause(reason)
        return reason is None

    def stop(self, *_signal_args: Any) -> None:
        """Signal handler: stop the current trainer, hand its run back to the queue, exit."""
        self._stop.set()

    def execute(self, claim: jobs.Claim) -> None:
        """One attempt: its run folder, its trainer child watched to the end, its outcome."""
        run_dir = self.settings.run_dir(claim.run_id)
        recorder = AttemptRecorder(
            database=self.db,
            run_id=claim.run_id,
            attempt=claim.attempt,
            retry_seconds=self.settings.poll_seconds,
            run_dir=run_dir,
        )
        log.info("run %s attempt %s: starting in %s", claim.run_id, claim.attempt, run_dir)
        try:
            env = prepare_attempt(claim, run_dir, settings=self.settings, placement=self.placement)
        except (ConfigError, OSError) as exc:
            no_space = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
            kind = FailureKind.infrastructure if no_space else FailureKind.training
            recorder.write(jobs.fail, error=f"could not prepare {run_dir}: {exc}", kind=kind)
            if no_space:
                self._free_floor = disk.free_bytes(self.settings.runs_dir) + disk.run_needs(claim.config)
            return
        command = self.trainer_command(claim, run_dir)
        try:
            child = TrainerChild(command, env, fork_server=self.fork_server_socket())
            self.child = child
        except OSError as exc:
            recorder.write(
                jobs.fail, error=f"could not start the trainer {command[0]!r}: {exc}", kind=FailureKind.training
            )
            return
        stopping = self._watch(child, recorder)
        returncode = child.reap()
        recorder.pending.extend(child.remaining_events())
        recorder.store_pending()
        recorder.flush_steps()
        recorder.record_disk_size()  # before the outcome: the write is fenced by the running attempt
        self.record_end(recorder, returncode=returncode, stopping=stopping, child=child)
        if recorder.fault == FAULT_NO_SPACE:
            self._free_floor = disk.free_bytes(self.settings.runs_dir) + disk.run_needs(claim.config)
        elif recorder.fault == FAULT_DATA_ROOT:
            self._data_root_gone = str(claim.config.get("data", {}).get("root", ""))

    def fork_server_socket(self) -> Path | None:
        """Where the trainer is forked from: the fork server the settings name, or this worker's own."""
        if not self.uses_fork_server or self.settings.fork_server == "off":
            return None
        if self.settings.fork_server != "auto":
            return Path(self.settings.fork_server)
        if self._fork_server is not None and self._fork_server.ready():
            return self._fork_server.socket_path
        return None

    def trainer_command(self, claim: jobs.Claim, run_dir: Path) -> list[str]:
        return trainer_command(claim, run_dir, settings=self.settings, placement=self.placement)

    def record_end(self, recorder: AttemptRecorder, *, returncode: int, stopping: bool, child: TrainerChild) -> None:
        record_outcome(
            recorder,
            returncode=returncode,
            stopping=stopping,
            stderr_tail=child.stderr_tail,
            worker_name=self.name,
            stale_after_seconds=self.settings.stale_after_seconds,
        )

    def _watch(self, child: TrainerChild, recorder: AttemptRecorder) -> bool:
        """Store events until the child's stdout closes; stop it on cancel, loss or shutdown.
        Returns True when the worker itself is shutting down."""
        tick = min(self.settings.poll_seconds, 1.0)
        next_beat = time.monotonic() + self.settings.heartbeat_seconds
        next_check = time.monotonic() + tick
        while True:
            event = child.next_event(timeout=max(0.0, min(next_beat, next_check) - time.monotonic()))
            if child.stdout_closed:
                return False  # the trainer ended by itself: its outcome stands
            if event is not None:
                recorder.pending.append(event)
            recorder.store_pending()
            now = time.monotonic()
            if now >= next_check:
                next_check = now + tick
                recorder.flush_steps()
                recorder.poll_cancel()
            if now >= next_beat:
                next_beat = now + self.settings.heartbeat_seconds
                self.presence.report()
                recorder.heartbeat()
            if recorder.lost or recorder.cancel or self._stop.is_set():
                reason = "lost" if recorder.lost else "cancel" if recorder.cancel else "worker stopping"
                log.info("run %s attempt %s: stopping the trainer (%s)", recorder.run_id, recorder.attempt, reason)
                child.stop(grace=self.settings.kill_grace_seconds)
                return self._stop.is_set() and not recorder.cancel


def run_worker(*, settings: Settings, placement: Placement, once: bool, exit_when_idle: bool) -> int:
    """``tricklab worker``: SIGTERM and SIGINT hand the current run back to the queue and exit.

    A worker on GPUs first checks that the trainer can use them, and stops with the reason if not.
    """
    database = Database(settings.database_url, busy_timeout_seconds=settings.sqlite_busy_timeout_seconds)
    worker = Worker(settings=settings, database=database, placement=placement)
    try:
        gpu_locks = hold_gpus(placement, owner=worker.name)
        signal.signal(signal.SIGTERM, worker.stop)
        signal.signal(signal.SIGINT, worker.stop)
        try:
            if placement.runtime_device == "cuda":
                log.info("worker %s trains on %s", worker.name, check_cuda(settings.trainer_command, placement))
            return worker.serve(once=once, exit_when_idle=exit_when_idle)
        finally:
            for lock in gpu_locks:
                lock.close()
    finally:
        database.dispose()
