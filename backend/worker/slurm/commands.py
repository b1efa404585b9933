"""Slurm through its own commands, the one place tricklab calls them: ``sbatch --parsable``, ``squeue``,
``scontrol show job -o`` and ``show node -o``, ``scontrol requeue``, ``scancel``, and ``sacct`` only where
accounting answers.

Neither submitit nor pyslurm: submitit pickles a callable and tracks state through sacct alone, and
pyslurm must be built against the cluster's Slurm version. The commands are the interface every Slurm
keeps stable, and they find the cluster as a user's shell does (SLURM_CONF, or /etc/slurm).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

COMMAND_SECONDS = 60  # a busy slurmctld answers slowly; past this it is down, not busy
# squeue's fields, unpadded, "|" after each: the comment last, so a "|" inside it cannot shift the others.
QUEUE_FORMAT = "JobID:|,State:|,Reason:|,NodeList:|,RestartCnt:|,Name:|,Comment:"
# States a job no longer runs or waits in; squeue keeps them for MinJobAge (300 s by default).
ENDED = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
        "SPECIAL_EXIT",
    }
)


# What Slurm's commands say when the controller cannot be reached, rather than refusing the request.
UNREACHABLE = (
    "Unable to contact slurm controller",
    "Socket timed out",
    "Connection refused",
    "Zero Bytes were transmitted",
)


class SlurmError(RuntimeError):
    """A Slurm command failed; the message names it and quotes its stderr. ``transient``: it could not reach
    the controller (or did not answer in time), so the same command may work later."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class SlurmJob:
    """One line of squeue."""

    job_id: int
    state: str
    reason: str
    nodes: str
    restarts: int
    name: str
    comment: str

    @property
    def ended(self) -> bool:
        return self.state in ENDED


class Slurm:
    """The cluster the commands on PATH reach. ``environ``: their environment (SLURM_CONF among it)."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self.environ = dict(os.environ if environ is None else environ)

    def _run(self, *argv: str, stdin: str | None = None) -> str:
        try:
            done = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                env=self.environ,
                timeout=COMMAND_SECONDS,
                check=False,  # the exit code and stderr make the error
            )
        except subprocess.TimeoutExpired as exc:
            raise SlurmError(f"`{' '.join(argv[:2])}` did not answer: {exc}", transient=True) from None
        except OSError as exc:
            raise SlurmError(f"`{' '.join(argv[:2])}` could not be run: {exc}") from None
        if done.returncode != 0:
            message = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            unreachable = any(word in done.stderr for word in UNREACHABLE)
            raise SlurmError(f"`{' '.join(argv[:2])}` failed: {message[0]}", transient=unreachable)
        return done.stdout

    def submit(self, script: str, options: Sequence[str]) -> int:
        """sbatch the batch ``script`` (its text, on stdin) with ``options``; the job id."""
        out = self._run("sbatch", "--parsable", *options, stdin=script).strip()
        try:
            return int(out.split(";", 1)[0])  # "id" or "id;cluster"
        except ValueError:
            raise SlurmError(f"sbatch answered {out!r}, not a job id") from None

    def queue(self) -> list[SlurmJob]:
        """Every job squeue lists, ended ones too (for MinJobAge), in one call."""
        jobs = []
        for line in self._run("squeue", "--noheader", "--states=all", "-O", QUEUE_FORMAT).splitlines():
            parts = line.split("|", 6)
            if len(parts) != 7 or not parts[0].isdigit():
                continue  # an array's "123_[1-4]" or a line squeue wrapped: not a job of tricklab's
            job_id, state, reason, nodes, restarts, name, comment = parts
            comment = comment.removesuffix("|")
            jobs.append(SlurmJob(int(job_id), state, reason, nodes, int(restarts or 0), name, comment))
        return jobs

    def show_job(self, job_id: int) -> dict[str, str]:
        """``scontrol show job -o``'s fields (JobState, Reason, NodeList, Restarts, ExitCode, ...)."""
        fields: dict[str, str] = {}
        for part in self._run("scontrol", "show", "job", "-o", str(job_id)).split():
            name, sep, value = part.partition("=")
            if sep:
                fields.setdefault(name, value)
        return fields

    def node_address(self, name: str) -> str:
        """The address of node ``name`` as Slurm reaches it (slurm.conf's NodeAddr; the name where none is set)."""
        for part in self._run("scontrol", "show", "node", "-o", name).split():
            field, sep, value = part.partition("=")
            if field == "NodeAddr" and sep and value:
                return value
        return name

    def signal(self, job_id: int, signal_name: str) -> None:
        """Send ``signal_name`` to the job's batch process and its steps (scancel --signal --full)."""
        self._run("scancel", f"--signal={signal_name}", "--full", str(job_id))

    def cancel(self, job_id: int) -> None:
        self._run("scancel", str(job_id))

    def requeue(self, job_id: int) -> None:
        self._run("scontrol", "requeue", str(job_id))

    def final_state(self, job_id: int) -> str | None:
        """The job's end state from accounting; None without sacct or without an accounting database
        (sacct then says "accounting storage is disabled"), where the run folder's end marker decides."""
        if shutil.which("sacct", path=self.environ.get("PATH")) is None:
            return None
        try:
            out = self._run("sacct", "--noheader", "--parsable2", "--allocations", "-o", "State", "-j", str(job_id))
        except SlurmError:
            return None
        states = [line.split()[0] for line in out.splitlines() if line.strip()]
        return states[-1] if states else None
