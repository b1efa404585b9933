"""The worker process: claims runs, runs each in a trainer child, stores what the child reports.

A worker owns its devices (``backend.placement``): one GPU (``tricklab worker --gpus N``), several,
trained on together by one torchrun child per run (``--gpus 0,1,2,3``), or CPU processes
(``--procs 2``). The child prints JSON lines on stdout (under torchrun, rank 0 does, and the
launcher adds the failing rank's error); the worker upserts them fenced by its attempt, heartbeats,
polls the cancel flag, and records the end. A worker that dies takes its child with it
(PR_SET_PDEATHSIG, which torchrun's ranks set too) and leaves a stale heartbeat; the next claim
requeues the run and the new child resumes from the last checkpoint.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy.exc import DBAPIError, OperationalError

from backend import migrate
from backend.db import Database
from backend.models import FailureKind
from backend.placement import Placement, PlacementError, hold_gpus
from backend.services import queue as jobs
from backend.services.workers import WorkerPresence
from backend.settings import Settings
from trainer.config import ConfigError, RunConfig
from trainer.lr_finder.sweep import LRSweep
from trainer.processes import die_with_parent
from trainer.protocol import (
    EXIT_SUPERSEDED,
    EventType,
    MalformedEvent,
    RunFolder,
    cuda_check_command,
    launch_command,
    parse_event,
    write_attempt,
)

log = logging.getLogger("tricklab.worker")

STDERR_LINES = 40
CUDA_CHECK_SECONDS = 120  # importing torch and initialising CUDA on a cold machine
STEP_BATCH = 200
_EOF = object()
_DROPPED = "dropped"  # a write the database refused for good: the event is skipped


@dataclass
class _Attempt:
    """What one attempt has seen so far."""

    run_id: int
    attempt: int
    start_epoch: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    lost: bool = False  # the run moved on (requeued, retried, deleted): write nothing more
    cancel: bool = False
    pending: collections.deque = field(default_factory=collections.deque)  # events not yet stored
    retry_at: float = 0.0  # after a failed write, wait a tick instead of retrying at each event
    steps: list[dict[str, Any]] = field(default_factory=list)


class Worker:
    def __init__(
        self, *, settings: Settings, database: Database, placement: Placement | None = None, name: str | None = None
    ):
        self.settings = settings
        self.db = database
        self.placement = placement or Placement()
        label = self.placement.label
        self.name = name or f"{socket.gethostname()}:{os.getpid()}" + (f":{label}" if label else "")
        self._stop = threading.Event()
        self.presence = WorkerPresence(
            database=database, name=self.name, placement=self.placement, every=settings.heartbeat_seconds
        )

    # --- the loop -----------------------------------------------------------------------------

    def serve(self, *, once: bool = False, exit_when_idle: bool = False) -> int:
        """Claim and run until stopped; ``once``: one run at most; ``exit_when_idle``: until the
        queue has nothing to claim."""
        migrate.upgrade(self.db)
        log.info("worker %s ready (runs in %s)", self.name, self.settings.runs_dir)
        while not self._stop.is_set():
            self.presence.report()
            try:
                with self.db.session(write=True) as session:
                    claim = jobs.claim_run(
                        session=session, worker=self.name, stale_after_seconds=self.settings.stale_after_seconds
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

    def stop(self, *_signal_args: Any) -> None:
        """Signal handler: stop the current trainer, hand its run back to the queue, exit."""
        self._stop.set()

    # --- one attempt ---------------------------------------------------------------------------

    def execute(self, claim: jobs.Claim) -> None:
        state = _Attempt(run_id=claim.run_id, attempt=claim.attempt)
        run_dir = self.settings.run_dir(claim.run_id)
        log.info("run %s attempt %s: starting in %s", claim.run_id, claim.attempt, run_dir)
        try:
            env = self._prepare(claim, run_dir)
        except (ConfigError, OSError) as exc:
            self._write(jobs.fail, state, error=f"could not prepare {run_dir}: {exc}", kind=FailureKind.training)
            return
        command = [*self._trainer_command(claim.attempt, run_dir), str(run_dir), "--attempt", str(claim.attempt)]
        try:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                start_new_session=True,
                preexec_fn=die_with_parent(os.getpid()),  # noqa: PLW1509 - only prctl, before exec
            )
        except OSError as exc:
            self._write(
                jobs.fail, state, error=f"could not start the trainer {command[0]!r}: {exc}", kind=FailureKind.training
            )
            return
        events: queue.Queue = queue.Queue()
        stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        readers = [
            threading.Thread(target=_read_events, args=(child.stdout, events), daemon=True),
            threading.Thread(target=_read_tail, args=(child.stderr, stderr_tail), daemon=True),
        ]
        for reader in readers:
            reader.start()

        stopping = self._watch(child, events, state)
        returncode = child.wait()
        _kill_group(child.pid, signal.SIGKILL)  # anything the trainer left behind in its group
        for reader in readers:
            reader.join(timeout=5)
        self._drain(events, state)
        self._finish(state, returncode=returncode, stopping=stopping, stderr_tail=stderr_tail)

    def _trainer_command(self, attempt: int, run_dir: Path) -> list[str]:
        """The trainer alone, or under torchrun with one process per owned device."""
        if not self.placement.distributed:
            return list(self.settings.trainer_command)
        return launch_command(
            self.settings.trainer_command,
            nproc_per_node=self.placement.processes,
            log_dir=RunFolder(run_dir).rank_logs(attempt),
        )

    def _prepare(self, claim: jobs.Claim, run_dir: Path) -> dict[str, str]:
        config = json.loads(json.dumps(claim.config))
        teacher = config["tricks"]["kd"]["teacher"]
        if isinstance(teacher, int):
            config["tricks"]["kd"]["teacher"] = str(self.settings.run_dir(teacher))
        if self.placement.runtime_device is not None:
            config["runtime"]["device"] = self.placement.runtime_device
        run_config = RunConfig.from_dict(config)
        # Before the folder is touched: a batch this worker cannot split fails the attempt, by name.
        run_config.rank_batch_size(self.placement.processes)
        folder = RunFolder(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_attempt(folder, claim.attempt)  # first: a trainer of an older attempt stops writing
        run_config.save(folder.config)
        if claim.sweep is not None:
            # Its presence makes the child an LR range test of the config.
            LRSweep.from_dict(claim.sweep).save(folder.sweep)
        return {**os.environ, "PYTHONUNBUFFERED": "1", **self.placement.env}

    def _watch(self, child: subprocess.Popen, events: queue.Queue, state: _Attempt) -> bool:
        """Store events until the child's stdout closes; stop it on cancel, loss or shutdown.
        Returns True when the worker itself is shutting down."""
        tick = min(self.settings.poll_seconds, 1.0)
        next_beat = time.monotonic() + self.settings.heartbeat_seconds
        next_check = time.monotonic() + tick
        while True:
            try:
                event = events.get(timeout=max(0.0, min(next_beat, next_check) - time.monotonic()))
            except queue.Empty:
                event = None
            if event is _EOF:
                return False  # the trainer ended by itself: its outcome stands
            if event is not None:
                state.pending.append(event)
            self._store_pending(state)
            now = time.monotonic()
            if now >= next_check:
                next_check = now + tick
                self._flush_steps(state)
                flag = self._read(jobs.cancel_requested, state)
                state.cancel = state.cancel or bool(flag)
            if now >= next_beat:
                next_beat = now + self.settings.heartbeat_seconds
                self.presence.report()
                flag = self._write(jobs.heartbeat, state)
                state.cancel = state.cancel or bool(flag)
            if state.lost or state.cancel or self._stop.is_set():
                reason = "lost" if state.lost else "cancel" if state.cancel else "worker stopping"
                log.info("run %s attempt %s: stopping the trainer (%s)", state.run_id, state.attempt, reason)
                _stop_child(child, grace=self.settings.kill_grace_seconds)
                return self._stop.is_set() and not state.cancel

    def _drain(self, events: queue.Queue, state: _Attempt) -> None:
        """Events the child printed before it exited (a result may be among them)."""
        while True:
            try:
                event = events.get_nowait()
            except queue.Empty:
                break
            if event is not _EOF:
                state.pending.append(event)
        self._store_pending(state)
        self._flush_steps(state)

    def _store_pending(self, state: _Attempt) -> None:
        if time.monotonic() < state.retry_at:
            return
        while state.pending and not state.lost:
            event = state.pending[0]
            kind = event.get("type")
            if kind == EventType.start:
                start_epoch = int(event.get("start_epoch") or 0)
                hardware = {
                    "world_size": event.get("world_size"),
                    "devices": event.get("devices"),
                    "fallback": event.get("fallback"),
                }
                if self._write(jobs.record_start, state, start_epoch=start_epoch, **hardware) is None:
                    return  # database unreachable: retried on the next tick
                state.start_epoch = start_epoch
            elif kind == EventType.epoch:
                self._flush_steps(state)
                replay = int(event["epoch"]) <= state.start_epoch
                if self._write(jobs.store_epoch, state, row=event, replay=replay) is None:
                    return
            elif kind == EventType.step:
                state.steps.append(event)
                if len(state.steps) >= STEP_BATCH:
                    self._flush_steps(state)
            elif kind in (EventType.result, EventType.lr_range):
                state.result = event
            elif kind == EventType.error:
                state.error = str(event.get("message") or "")
            state.pending.popleft()

    def _flush_steps(self, state: _Attempt) -> None:
        if not state.steps or state.lost or time.monotonic() < state.retry_at:
            return
        if self._write(jobs.store_steps, state, steps=state.steps) is not None:
            state.steps = []

    def _finish(self, state: _Attempt, *, returncode: int, stopping: bool, stderr_tail) -> None:
        # A database outage at the end should not cost a finished run: keep trying while the run
        # is still ours (until half the stale timeout, after which another worker may take it).
        deadline = time.monotonic() + self.settings.stale_after_seconds / 2
        while state.pending and not state.lost and time.monotonic() < deadline:
            time.sleep(self.settings.poll_seconds)
            self._store_pending(state)
            self._flush_steps(state)
        if state.lost or state.pending:
            if state.pending:
                log.error(
                    "run %s attempt %s: database unreachable, %d events not stored; the run will be requeued",
                    state.run_id,
                    state.attempt,
                    len(state.pending),
                )
            return
        if state.cancel:
            self._write_patiently(jobs.mark_cancelled, state, deadline=deadline)
            outcome = "cancelled"
        elif stopping:
            self._write_patiently(
                jobs.fail,
                state,
                deadline=deadline,
                kind=FailureKind.infrastructure,
                error=f"attempt {state.attempt}: worker {self.name} was stopped",
            )
            outcome = "handed back to the queue"
        elif returncode == 0 and state.result is not None:
            self._write_patiently(jobs.succeed, state, deadline=deadline, result=state.result)
            outcome = "succeeded"
        else:
            if returncode == 0:
                reason = "the trainer exited without a result"
            elif returncode == EXIT_SUPERSEDED:
                reason = "the trainer refused to write: RUN_DIR/ATTEMPT names another attempt"
            elif returncode < 0:
                reason = state.error or f"the trainer was killed by {signal.Signals(-returncode).name}"
            else:
                reason = state.error or f"the trainer exited with code {returncode}"
            tail = "".join(stderr_tail).rstrip()
            error = reason + (f"\n--- last lines of stderr ---\n{tail}" if tail else "")
            status = self._write_patiently(jobs.fail, state, deadline=deadline, error=error, kind=FailureKind.training)
            outcome = f"failed, now {status or 'lost'}: {reason}"
        log.info("run %s attempt %s: %s", state.run_id, state.attempt, outcome)

    # --- fenced database calls ----------------------------------------------------------------

    def _write(self, function, state: _Attempt, **kwargs: Any) -> Any:
        """Call a fenced queue function for this attempt; None from it means the run was lost.
        Also returns None, without losing the run, when the database cannot be reached."""
        try:
            with self.db.session(write=True) as session:
                outcome = function(session=session, run_id=state.run_id, attempt=state.attempt, **kwargs)
        except OperationalError as exc:  # connection lost, database locked: the next tick tries again
            log.warning("run %s: %s failed: %s", state.run_id, function.__name__, exc)
            state.retry_at = time.monotonic() + self.settings.poll_seconds
            return None
        except DBAPIError:  # retrying cannot help; blocking the later events would be worse
            log.exception("run %s: %s refused by the database; skipped", state.run_id, function.__name__)
            return _DROPPED
        if outcome is None:
            log.warning(
                "run %s attempt %s: no longer ours (requeued, cancelled or deleted)", state.run_id, state.attempt
            )
            state.lost = True
            return None
        return outcome

    def _write_patiently(self, function, state: _Attempt, *, deadline: float, **kwargs: Any) -> Any:
        """``_write``, retried while the database is unreachable, until ``deadline``."""
        while True:
            outcome = self._write(function, state, **kwargs)
            if outcome is not None or state.lost or time.monotonic() >= deadline:
                return outcome
            time.sleep(self.settings.poll_seconds)

    def _read(self, function, state: _Attempt) -> Any:
        try:
            with self.db.session() as session:
                outcome = function(session=session, run_id=state.run_id, attempt=state.attempt)
        except DBAPIError as exc:
            log.warning("run %s: %s failed: %s", state.run_id, function.__name__, exc)
            return None
        if outcome is None:
            state.lost = True
        return outcome


def _read_events(stream: IO[str], events: queue.Queue) -> None:
    """Events, one JSON object per line; any other line the trainer prints is ignored."""
    for line in stream:
        try:
            event = parse_event(line)
        except MalformedEvent:
            log.warning("ignoring a malformed trainer event: %.200s", line.strip())
            continue
        if event is not None:
            events.put(event)
    events.put(_EOF)


def _read_tail(stream: IO[str], tail: collections.deque) -> None:
    for line in stream:
        tail.append(line)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop_child(child: subprocess.Popen, *, grace: float) -> None:
    """SIGTERM the trainer's whole process group (its data loader workers too), then SIGKILL."""
    _kill_group(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill_group(child.pid, signal.SIGKILL)
        child.wait()


def check_cuda(settings: Settings, placement: Placement) -> str:
    """The GPUs the trainer sees with ``placement``'s environment, as it names them; PlacementError,
    with the trainer's reason, when it cannot use them: a GPU worker that trained on the CPU, or failed
    every run it claimed, would hide that."""
    command = cuda_check_command(settings.trainer_command, placement.processes)
    where = f"this worker trains on {placement.label}"
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env={**os.environ, **placement.env},
            text=True,
            timeout=CUDA_CHECK_SECONDS,
            check=False,  # the exit code is the answer
        )
    except OSError as exc:
        raise PlacementError(f"{where}, but the trainer {command[0]!r} could not be started: {exc}") from None
    except subprocess.TimeoutExpired:
        raise PlacementError(f"{where}, but `{' '.join(command)}` did not answer in {CUDA_CHECK_SECONDS} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1].removeprefix("error: ") if lines else f"`{' '.join(command)}` exited {done.returncode}"
        raise PlacementError(f"{where}, but the trainer cannot use it: {reason}")
    return done.stdout.strip()


def run_worker(*, settings: Settings, placement: Placement, once: bool, exit_when_idle: bool) -> int:
    """``tricklab worker``: SIGTERM and SIGINT hand the current run back to the queue and exit.

    A worker on GPUs first checks that the trainer can use them, and stops with the reason if not.
    """
    database = Database(settings.database_url)
    worker = Worker(settings=settings, database=database, placement=placement)
    try:
        gpu_locks = hold_gpus(placement, owner=worker.name)
        signal.signal(signal.SIGTERM, worker.stop)
        signal.signal(signal.SIGINT, worker.stop)
        try:
            if placement.runtime_device == "cuda":
                log.info("worker %s trains on %s", worker.name, check_cuda(settings, placement))
            return worker.serve(once=once, exit_when_idle=exit_when_idle)
        finally:
            for lock in gpu_locks:
                lock.close()
    finally:
        database.dispose()
