"""Inside a Slurm job: the attempt it was submitted for, trained as a worker trains it (``backend.worker``:
the trainer child, its events, heartbeats, epoch rows fenced by the attempt), talking to the database
directly.

What Slurm does to the job changes only the end:
- the warning signal (``--signal=B:USR2@lead``, sent before the time limit or a preemption) goes on to
  the trainer, which stops after its next step and checkpoints there, mid-epoch; the job then asks Slurm
  to requeue it, and its next start continues at the following step, in the same attempt;
- SIGTERM (Slurm ending the job: time limit, scancel, preemption, node failure) stops the trainer and
  records nothing: the dispatcher reads Slurm's reason and ends the run with it;
- each end writes the marker ``slurm-end-<job id>`` into the run folder, which tells the dispatcher,
  where there is no sacct, that the job ended by itself rather than vanished.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend import migrate
from backend.db import Database
from backend.placement import Placement
from backend.services import queue as jobs
from backend.services.slurm_runs import job_claim
from backend.settings import Settings
from backend.worker.child import TrainerChild
from backend.worker.loop import Worker
from backend.worker.recorder import AttemptRecorder
from backend.worker.slurm.commands import Slurm, SlurmError
from trainer.protocol import EXIT_WARNED, WARNING_SIGNAL, RunFolder, launch_command

log = logging.getLogger("tricklab.worker")

RENDEZVOUS_PORTS = (29500, 9000)  # from 29500, one port per job id modulo 9000: jobs sharing a node never meet


def end_marker(run_dir: Path, job_id: int | str) -> Path:
    return run_dir / f"slurm-end-{job_id}"


def rendezvous(environ: dict[str, str], *, nodes: int, address: Callable[[str], str] = str) -> list[str]:
    """torchrun's options on a job of ``nodes`` nodes: the rendezvous on the first node of the job's node
    list (at ``address(node)``: a node's name need not resolve, as where several slurmds share a host), the
    warning signal forwarded to the ranks, and time for their checkpoint before torchrun kills them (30 s
    otherwise)."""
    first = address(first_node(environ.get("SLURM_JOB_NODELIST", "localhost")))
    job = environ.get("SLURM_JOB_ID", "0")
    port = RENDEZVOUS_PORTS[0] + int(job) % RENDEZVOUS_PORTS[1] if job.isdigit() else RENDEZVOUS_PORTS[0]
    return [
        "--nnodes",
        str(nodes),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"{first}:{port}",
        "--rdzv-id",
        job,
        "--signals-to-handle",
        f"SIGTERM,SIGINT,{WARNING_SIGNAL}",
        "--shutdown-timeout",
        "120",
    ]


def first_node(nodelist: str) -> str:
    """The first host of a Slurm node list: ``gpu[03-04,07],cpu1`` -> ``gpu03``."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist)
    if match is None:
        return nodelist
    prefix, ranges = match.groups()
    return prefix + (ranges.split(",", 1)[0].split("-", 1)[0] if ranges else "")


class SlurmJobWorker(Worker):
    """One attempt, inside its job, on ``nodes`` nodes of ``per_node`` processes each (1: the trainer alone)."""

    # Never a fork server: one outside the job (the dispatcher's, whose settings the job inherits) would run
    # the trainer beyond Slurm's limits and accounting, and one inside would pay the imports all the same.
    uses_fork_server = False

    def __init__(self, *, nodes: int, per_node: int, slurm: Slurm, **kwargs: Any):
        super().__init__(**kwargs)
        self.nodes = nodes
        self.per_node = per_node
        self.slurm = slurm
        self.outcome = "recorded"
        self.warned = False  # the warning signal came: a trainer that then fails was stopped by it

    def trainer_command(self, claim: jobs.Claim, run_dir: Path) -> list[str]:
        processes = self.nodes * self.per_node
        if processes == 1:
            return super().trainer_command(claim, run_dir)
        launcher = launch_command(
            self.settings.trainer_command,
            nproc_per_node=self.per_node,
            rendezvous=rendezvous(dict(os.environ), nodes=self.nodes, address=self.node_address),
            log_dir=RunFolder(run_dir).rank_logs(claim.attempt),
        )
        # One torchrun per node, on one node too (the same path); a node that fails ends the others at once.
        srun = [
            "srun",
            "--kill-on-bad-exit=1",
            f"--nodes={self.nodes}",
            f"--ntasks={self.nodes}",
            "--ntasks-per-node=1",
            "--overlap",
        ]
        return [*srun, *launcher, str(run_dir), "--attempt", str(claim.attempt)]

    def node_address(self, node: str) -> str:
        """Slurm's address of ``node``, or its name where scontrol cannot say (names resolve on most clusters)."""
        try:
            return self.slurm.node_address(node)
        except SlurmError as exc:
            log.warning("no address of node %s from Slurm (%s): the rendezvous goes to its name", node, exc)
            return node

    def warn(self, *_signal_args: Any) -> None:
        """The warning signal: on to the trainer (or its launcher), whose handler sets a flag."""
        self.warned = True
        child = self.child
        if child is not None and child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.process.pid, signal.Signals[WARNING_SIGNAL])

    def record_end(self, recorder: AttemptRecorder, *, returncode: int, stopping: bool, child: TrainerChild) -> None:
        if stopping or self._stop.is_set():  # Slurm's SIGTERM may reach the trainer before this process
            self.outcome = "stopped by Slurm"  # the dispatcher names the reason Slurm gives
            return
        # A launcher that the signal reached before its handler (srun, torchrun starting) dies of it instead.
        if returncode == EXIT_WARNED or (self.warned and returncode != 0 and recorder.result is None):
            recorder.poll_cancel()
            # The trainer's last word names the step it checkpointed at (under torchrun it is in the ranks' logs).
            for line in reversed(child.stderr_tail):
                if line.startswith("stopped: "):
                    log.info("run %s: %s", recorder.run_id, line.removeprefix("stopped: ").strip())
                    break
            if not recorder.cancel and not recorder.lost:
                job_id = int(os.environ["SLURM_JOB_ID"])
                try:
                    self.slurm.requeue(job_id)
                    self.outcome = "requeued"
                    return
                except SlurmError as exc:  # scontrol missing on the node: the dispatcher resubmits
                    log.warning("run %s: could not requeue job %s: %s", recorder.run_id, job_id, exc)
                    self.outcome = "warned"
                    return
        super().record_end(recorder, returncode=returncode, stopping=stopping, child=child)


def run_job(*, settings: Settings, run_id: int, attempt: int, nodes: int, per_node: int, placement: Placement) -> int:
    """``tricklab worker --slurm-job RUN:ATTEMPT``: the batch script's one command."""
    job_id = os.environ.get("SLURM_JOB_ID", "?")
    database = Database(settings.database_url)
    try:
        migrate.upgrade(database)
        with database.session() as session:
            found = job_claim(session=session, run_id=run_id, attempt=attempt)
        run_dir = settings.run_dir(run_id)
        if found is None:
            log.info("run %s attempt %s: moved on before job %s started; nothing to do", run_id, attempt, job_id)
            _mark(run_dir, job_id, "moved on")
            return 0
        worker = SlurmJobWorker(
            nodes=nodes,
            per_node=per_node,
            slurm=Slurm(),
            settings=settings,
            database=database,
            placement=placement,
            name=f"slurm job {job_id} on {socket.gethostname()}",
        )
        signal.signal(signal.SIGTERM, worker.stop)
        signal.signal(signal.SIGINT, worker.stop)
        signal.signal(signal.Signals[WARNING_SIGNAL], worker.warn)
        worker.execute(found[0])
        # A late warning (the dispatcher's cancel crossing this end) must not kill the job as it exits:
        # Python restores the default action, death, while it shuts down.
        signal.signal(signal.Signals[WARNING_SIGNAL], signal.SIG_IGN)
        log.info("run %s attempt %s: job %s %s", run_id, attempt, job_id, worker.outcome)
        _mark(run_dir, job_id, worker.outcome)
        return 0
    finally:
        database.dispose()


def _mark(run_dir: Path, job_id: str, outcome: str) -> None:
    with contextlib.suppress(OSError):
        end_marker(run_dir, job_id).write_text(json.dumps({"job_id": job_id, "outcome": outcome}) + "\n")
