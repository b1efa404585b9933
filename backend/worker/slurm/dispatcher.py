"""The Slurm dispatcher, ``tricklab worker --slurm``: claims ready runs as a worker does (teachers first,
by priority, with the same attempt fence) and submits each as one Slurm job; then follows its jobs with
one squeue call a tick, and ends the runs whose jobs Slurm ended, with Slurm's reason.

- The attempt is stored (the claim) before sbatch, and each job carries ``--comment tricklab:RUN:ATTEMPT``:
  a dispatcher that was killed between the two finds, at its next tick, either the job (by its comment,
  which also tells a reused job id apart) or no job, and then submits it. Nothing is submitted twice.
- A run pending in Slurm shows ``queued in Slurm`` and the pending reason; no heartbeat is expected from
  it (``backend.services.queue.requeue_stale`` leaves runs in Slurm's hands to the dispatcher).
- Cancel: the warning signal first (the trainer stops at a step), ``scancel`` after the grace.
- A job gone from squeue (past MinJobAge, or while the dispatcher was down) ends by sacct where it
  answers, else by the end marker the job leaves in the run folder; without one the run was lost and
  goes back to the queue. It never succeeds on Slurm's word: only the job's own result does that.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from backend import migrate
from backend.db import Database
from backend.models import FailureKind, RunStatus, utcnow
from backend.services import queue as jobs
from backend.services.slurm_runs import SlurmRun, end_in_slurm, job_comment, record_job, run_name, slurm_runs
from backend.services.workers import report_worker
from backend.settings import Settings
from backend.worker.slurm.commands import Slurm, SlurmError, SlurmJob
from backend.worker.slurm.job import end_marker
from backend.worker.slurm.output import over_memory, requeue_reason
from trainer.protocol import WARNING_SIGNAL

log = logging.getLogger("tricklab.worker")


@dataclass(frozen=True)
class SlurmOptions:
    """What each job asks Slurm for (``tricklab worker --slurm``'s flags)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int = 1  # training processes per node without GPUs (gloo), as --procs
    cpus_per_task: int | None = None
    mem_per_task: str | None = None  # Slurm's size, e.g. 8G: the node asks for tasks x this
    sbatch: tuple[str, ...] = ()
    max_pending: int = 4
    warning_lead_seconds: int = 180  # a checkpoint's time and the minute Slurm may signal early
    cancel_grace_seconds: float = 30.0

    @property
    def per_node(self) -> int:
        return self.gpus_per_node or self.tasks_per_node


def sbatch_options(options: SlurmOptions, *, run_id: int, attempt: int, name: str, output: str, site: str) -> list[str]:
    """sbatch's arguments for one attempt's job."""
    argv = [
        f"--job-name=tricklab-{run_id}-{_slug(name)}",
        f"--comment={job_comment(run_id, attempt, site)}",
        f"--output={output}",
        "--open-mode=append",  # a requeued job adds to its log
        "--requeue",
        f"--nodes={options.nodes}",
        f"--ntasks-per-node={options.per_node}",
    ]
    if options.warning_lead_seconds:  # 0: no warning, Slurm's SIGTERM alone (the run resumes from its last epoch)
        argv.append(f"--signal=B:{WARNING_SIGNAL.removeprefix('SIG')}@{options.warning_lead_seconds}")
    for flag, value in (
        ("--partition", options.partition),
        ("--account", options.account),
        ("--qos", options.qos),
        ("--time", options.time),
        ("--cpus-per-task", options.cpus_per_task),
    ):
        if value is not None:
            argv.append(f"{flag}={value}")
    if options.gpus_per_node:
        argv.append(f"--gpus-per-node={options.gpus_per_node}")
    if options.mem_per_task:
        argv.append(f"--mem-per-cpu={options.mem_per_task}" if not options.cpus_per_task else _mem(options))
    return [*argv, *options.sbatch]


def _mem(options: SlurmOptions) -> str:
    """Memory per task as sbatch's per-node --mem: tasks per node times the size."""
    size = options.mem_per_task or "0"
    digits = "".join(char for char in size if char.isdigit())
    unit = size[len(digits) :] or "M"
    return f"--mem={int(digits) * options.per_node}{unit}"


def _slug(name: str) -> str:
    kept = "".join(char if char.isalnum() or char in "-_." else "-" for char in name)
    return kept.strip("-")[:60] or "run"


def batch_script(*, settings: Settings, run_id: int, attempt: int, options: SlurmOptions) -> str:
    """The job's script: one command, exec'd so that the batch process is tricklab's and gets the warning."""
    command = [
        sys.executable,
        "-m",
        "backend",
        "worker",
        "--slurm-job",
        f"{run_id}:{attempt}",
        "--nodes",
        str(options.nodes),
        "--tasks-per-node",
        str(options.per_node),
    ]
    if options.gpus_per_node:
        command += ["--gpus-per-node", str(options.gpus_per_node)]
    return "\n".join(
        [
            "#!/bin/bash",
            f"# tricklab run {run_id}, attempt {attempt}; runs folder {settings.runs_dir}",
            f"exec {shlex.join(command)}",
            "",
        ]
    )


# Slurm's end states, as a run's error names them.
ENDINGS = {
    "TIMEOUT": (RunStatus.failed, "hit its time limit (TIMEOUT)"),
    "NODE_FAIL": (RunStatus.queued, "lost its node (NODE_FAIL)"),
    "BOOT_FAIL": (RunStatus.queued, "could not boot its node (BOOT_FAIL)"),
    "OUT_OF_MEMORY": (RunStatus.failed, "ran out of memory (OUT_OF_MEMORY): ask for more with --mem-per-task"),
    "PREEMPTED": (RunStatus.queued, "was preempted (PREEMPTED)"),
    "DEADLINE": (RunStatus.failed, "passed its deadline (DEADLINE)"),
    "FAILED": (RunStatus.failed, "failed (FAILED) before its trainer reported an end; see its slurm-*.out"),
    "COMPLETED": (RunStatus.queued, "ended (COMPLETED) without storing the run's end"),
}


@dataclass
class Dispatcher:
    settings: Settings
    database: Database
    options: SlurmOptions
    slurm: Slurm = field(default_factory=Slurm)
    name: str = field(default_factory=lambda: f"{jobs.SLURM_WORKER_PREFIX}{socket.gethostname()}:{os.getpid()}")
    _stop: threading.Event = field(default_factory=threading.Event)
    _warned: dict[int, float] = field(default_factory=dict)  # job id -> when the cancel's signal went

    @property
    def site(self) -> str:
        """This tricklab's mark in its jobs' comments: its database and runs folder, hashed."""
        where = f"{self.settings.database_url} {self.settings.runs_dir.resolve()}"
        return hashlib.sha256(where.encode()).hexdigest()[:8]

    def stop(self, *_signal_args: Any) -> None:
        """Signal handler: stop dispatching. The jobs go on; the next dispatcher adopts them."""
        self._stop.set()

    def serve(self, *, exit_when_idle: bool = False) -> int:
        migrate.upgrade(self.database)
        log.info("dispatcher %s ready: runs go to Slurm (runs in %s)", self.name, self.settings.runs_dir)
        started_at, next_report = utcnow(), 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_report:
                # In the registry, without devices of its own: the pages then know runs will start.
                next_report = time.monotonic() + self.settings.heartbeat_seconds
                with contextlib.suppress(DBAPIError), self.database.session(write=True) as session:
                    report_worker(session=session, name=self.name, devices=[], started_at=started_at)
            try:
                busy = self.tick()
            except (SlurmError, DBAPIError) as exc:
                log.warning("dispatcher %s: %s; trying again", self.name, exc)
                busy = True
            if exit_when_idle and not busy:
                break
            self._stop.wait(self.settings.poll_seconds)
        return 0

    def tick(self) -> bool:
        """Follow every job, then submit ready runs while fewer than max_pending wait. Whether any run is
        in Slurm's hands or was submitted."""
        queue = {job.comment: job for job in self.slurm.queue() if job.comment.startswith("tricklab:")}
        with self.database.session() as session:
            followed = slurm_runs(session=session)
        pending = 0
        for run in followed:
            job = queue.get(job_comment(run.run_id, run.attempt, self.site))
            self.follow(run, job)
            pending += job is None or job.state == "PENDING"
        submitted = False
        while pending < self.options.max_pending and not self._stop.is_set():
            claim = jobs.claim_if_any(
                database=self.database, worker=self.name, stale_after_seconds=self.settings.stale_after_seconds
            )
            if claim is None:
                break
            self.submit(claim.run_id, claim.attempt)
            pending += 1
            submitted = True
        return bool(followed) or submitted

    def submit(self, run_id: int, attempt: int) -> None:
        """sbatch one attempt (already stored) and record its job id."""
        run_dir = self.settings.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)  # Slurm opens the job's output there
        with self.database.session() as session:
            name = run_name(session=session, run_id=run_id)
        options = sbatch_options(
            self.options,
            run_id=run_id,
            attempt=attempt,
            name=name,
            output=str(run_dir.resolve() / "slurm-%j.out"),
            site=self.site,
        )
        script = batch_script(settings=self.settings, run_id=run_id, attempt=attempt, options=self.options)
        try:
            job_id = self.slurm.submit(script, options)
        except SlurmError as exc:
            if exc.transient:  # the controller is busy or down: the next tick submits it (no job has its comment)
                log.warning("run %s: sbatch failed, trying again: %s", run_id, exc)
                return
            log.error("run %s: sbatch refused the job: %s", run_id, exc)
            with self.database.session(write=True) as session:
                end_in_slurm(session=session, run_id=run_id, attempt=attempt, status=RunStatus.failed, error=str(exc))
            return
        log.info("run %s attempt %s: Slurm job %s", run_id, attempt, job_id)
        with self.database.session(write=True) as session:
            record_job(session=session, run_id=run_id, attempt=attempt, job_id=job_id, state="PENDING")

    def follow(self, run: SlurmRun, job: SlurmJob | None) -> None:
        """One run in Slurm's hands, against what squeue says of its job (None: squeue lists none)."""
        if job is None:
            if run.job_id is None:
                # Claimed, then the dispatcher stopped before sbatch (or sbatch before the job id was
                # stored and the job has since left squeue): no job carries the comment, so submit it.
                self.submit(run.run_id, run.attempt)
            else:
                self.vanished(run)
            return
        if not job.ended:
            requeued = None
            if job.job_id == run.job_id and job.restarts > (run.restarts or 0):
                requeued = requeue_reason(self.settings.run_dir(run.run_id), job)
                log.info("run %s attempt %s: %s", run.run_id, run.attempt, requeued)
            with self.database.session(write=True) as session:
                record_job(
                    session=session,
                    run_id=run.run_id,
                    attempt=run.attempt,
                    job_id=job.job_id,
                    state=job.state,
                    reason=job.reason,
                    nodes=job.nodes,
                    restarts=job.restarts,
                    requeued=requeued,
                )
            if run.cancel_requested:
                self.cancel(job)
            return
        self.ended(run, job.job_id, job.state, cancelled_here=run.cancel_requested)

    def cancel(self, job: SlurmJob) -> None:
        """A cancel from the page or the API: a pending job goes at once; a running one gets the warning
        signal (its trainer stops at a step, its job records the cancel), then scancel after the grace."""
        if job.state == "PENDING":
            self.slurm.cancel(job.job_id)
            return
        warned_at = self._warned.get(job.job_id)
        if warned_at is None:
            self.slurm.signal(job.job_id, WARNING_SIGNAL.removeprefix("SIG"))
            self._warned[job.job_id] = time.monotonic()
        elif time.monotonic() - warned_at > self.options.cancel_grace_seconds:
            self.slurm.cancel(job.job_id)

    def ended(self, run: SlurmRun, job_id: int, state: str, *, cancelled_here: bool) -> None:
        """The job ended and the run is still in its hands: the job stored no end, so Slurm's says it."""
        self._warned.pop(job_id, None)
        if (
            state == "COMPLETED"
            and not cancelled_here
            and _outcome(self.settings.run_dir(run.run_id), job_id) == "warned"
        ):
            # Warned, but scontrol could not requeue the job from its node: the same attempt, a new job.
            log.info(
                "run %s attempt %s: job %s could not requeue itself; submitting it again",
                run.run_id,
                run.attempt,
                job_id,
            )
            self.submit(run.run_id, run.attempt)
            return
        memory = over_memory(self.settings.run_dir(run.run_id), job_id) if state == "FAILED" else None
        if memory is not None:
            # Killed by JobAcctGather's OverMemoryKill (clusters without cgroups): Slurm says FAILED only.
            state = "OUT_OF_MEMORY"
        if state == "CANCELLED" or cancelled_here:
            status, error = RunStatus.cancelled, f"cancelled in Slurm (job {job_id})"
            if cancelled_here:
                error = f"cancelled (Slurm job {job_id} stopped)"
        else:
            status, what = ENDINGS.get(state, (RunStatus.failed, f"ended {state}"))
            error = f"Slurm job {job_id} {what}" + (f" ({memory})" if memory else "")
        with self.database.session(write=True) as session:
            now = end_in_slurm(
                session=session,
                run_id=run.run_id,
                attempt=run.attempt,
                status=status,
                error=error,
                kind=FailureKind.training,
            )
        log.info("run %s attempt %s: %s; now %s", run.run_id, run.attempt, error, now or "moved on")

    def vanished(self, run: SlurmRun) -> None:
        """The job left squeue before the dispatcher saw its end: sacct's final state where accounting
        answers, else the end marker; without either, the run was lost and is handed back to the queue."""
        assert run.job_id is not None
        state = self.slurm.final_state(run.job_id)
        if state is not None and state not in ("COMPLETED",):
            self.ended(run, run.job_id, state.split()[0].rstrip("+"), cancelled_here=run.cancel_requested)
            return
        outcome = _outcome(self.settings.run_dir(run.run_id), run.job_id)
        if outcome is not None:
            error = f"Slurm job {run.job_id} ended ({outcome}) but the run's end was not stored"
        else:
            error = (
                f"Slurm job {run.job_id} vanished from squeue without its end marker "
                f"(last seen {run.state or 'unknown'}): lost"
            )
        with self.database.session(write=True) as session:
            end_in_slurm(session=session, run_id=run.run_id, attempt=run.attempt, status=RunStatus.queued, error=error)
        log.warning("run %s attempt %s: %s", run.run_id, run.attempt, error)


def _outcome(run_dir: Path, job_id: int) -> str | None:
    """What the job's end marker says it did (recorded, requeued, warned, stopped by Slurm), if it left one."""
    try:
        return str(json.loads(end_marker(run_dir, job_id).read_text()).get("outcome"))
    except (OSError, ValueError, AttributeError):
        return None


def run_dispatcher(*, settings: Settings, options: SlurmOptions, exit_when_idle: bool = False) -> int:
    import signal

    database = Database(settings.database_url)
    dispatcher = Dispatcher(settings=settings, database=database, options=options)
    signal.signal(signal.SIGTERM, dispatcher.stop)
    signal.signal(signal.SIGINT, dispatcher.stop)
    try:
        return dispatcher.serve(exit_when_idle=exit_when_idle)
    finally:
        database.dispose()
