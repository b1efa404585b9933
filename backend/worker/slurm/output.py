"""What slurmstepd writes into a job's output (``slurm-JOBID.out`` in the run folder) when Slurm ends or
requeues it: squeue keeps no cause, only the state, so the dispatcher reads the cause here for the run's
one-line reason."""

from __future__ import annotations

import os
import re
from pathlib import Path

from backend.worker.slurm.commands import SlurmJob

# What slurmstepd writes into the job's output when Slurm ends it: "*** JOB 12 ON gpu03 CANCELLED AT
# 2026-12-07T15:46:36 DUE TO NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS ***" (PREEMPTION, JOB REQUEUE...).
_STEPD_END = re.compile(r"\*\*\* JOB (\d+) ON (\S+) CANCELLED AT \S+ DUE TO ([A-Z ]+?)(?:,| \*\*\*)")
_OUTPUT_TAIL_BYTES = 65536
# slurmstepd's word for a step that JobAcctGather's OverMemoryKill killed: "StepId=12.batch exceeded memory
# limit (329973760 > 52428800), being killed".
_OVER_MEMORY = re.compile(r"StepId=(\d+)\.\S+ exceeded memory limit \((\d+) > (\d+)\)")


def _output_tail(run_dir: Path, job_id: int) -> str:
    """The end of the job's output (slurm-JOBID.out), where slurmstepd writes why Slurm ended it."""
    try:
        with (run_dir / f"slurm-{job_id}.out").open("rb") as output:
            output.seek(max(0, output.seek(0, os.SEEK_END) - _OUTPUT_TAIL_BYTES))
            return output.read().decode(errors="replace")
    except OSError:
        return ""


def over_memory(run_dir: Path, job_id: int) -> str | None:
    """How far over its memory a step of the job went ("used 315 MiB of its 50 MiB"), where slurmstepd
    killed it for that (JobAcctGather's OverMemoryKill); None where it did not."""
    kills = [match for match in _OVER_MEMORY.finditer(_output_tail(run_dir, job_id)) if match.group(1) == str(job_id)]
    if not kills:
        return None
    used, limit = (int(kills[-1].group(index)) // 2**20 for index in (2, 3))
    return f"used {used} MiB of its {limit} MiB"


def requeue_reason(run_dir: Path, job: SlurmJob) -> str:
    """Why Slurm requeued ``job`` (a node failure, a preemption, ``scontrol requeue``), in one line: the
    cause slurmstepd wrote into the job's output where it could (a node that died at once writes none).
    squeue keeps no cause: a requeued job is only PENDING again, with one restart more."""
    cause = ""
    ends = [
        match for match in _STEPD_END.finditer(_output_tail(run_dir, job.job_id)) if match.group(1) == str(job.job_id)
    ]
    if ends:
        cause = f" after {ends[-1].group(3).lower()} on {ends[-1].group(2)}"
    return f"Slurm job {job.job_id} was requeued ({job.restarts}×){cause}; it resumes from its last checkpoint"
