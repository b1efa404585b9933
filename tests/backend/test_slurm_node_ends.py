"""The real single-host Slurm's spare node (a second slurmd, scripts/slurm), which this file's tests alone
use, one after the other: so taking it down touches no other test's jobs.

- A job whose node goes down: Slurm requeues it itself (it was submitted with --requeue), and the run says
  why in one line; a job that may not be requeued ends NODE_FAIL, and the run goes back to tricklab's queue
  with Slurm's reason, its next attempt resuming from its checkpoint, each epoch stored once.
- A job warned where ``scontrol`` is missing (the job's PATH lacks it): it cannot requeue itself, so the
  dispatcher submits the same attempt again, and the new job resumes at the step the warning stopped at.
- A run on two nodes (partition "both": the host's node and the spare one) trains over gloo as one
  process does, and the dispatcher's cancel ends its processes on both.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from functools import partial
from pathlib import Path

from sqlalchemy import select
from testlib.slurm import HOST, create, ended, epochs, get, job_of, slurm

from backend.models import EpochMetric, Run, RunStatus
from backend.services import queue as jobs
from backend.services import runs as run_service
from backend.services.slurm_runs import record_job
from backend.settings import default_trainer_command
from trainer.config import RunConfig
from tricklab.local import wait_for

SPARE = "tricklab-spare"


def test_node_failures_and_a_warning_without_scontrol(slurm_cluster, slurm_settings, dispatchers, tmp_path):
    settings, db = slurm_settings
    no_scontrol = tmp_path / "bin"  # the jobs' PATH: no Slurm command (the trainer runs by its full path)
    no_scontrol.mkdir()
    warned = create(db, settings, name="warned", epochs=2, priority=10)
    lost = create(db, settings, name="lost-node", epochs=3)
    requeued = create(db, settings, name="requeued-node", epochs=3)
    # Held at submission, each job is released when the test wants it to run.
    sbatch = f"--sbatch=--hold --export=ALL,PATH={no_scontrol}"
    dispatchers(slurm_cluster, settings, "--partition", "spare", "--warning-lead", "0", sbatch, "--max-pending", "8")
    job = {run_id: wait_for(partial(job_of, db, run_id), timeout=60, what="its job") for run_id in (warned, lost)}
    job[requeued] = wait_for(partial(job_of, db, requeued), timeout=60, what="its job")

    # The warning, as Slurm sends it before a time limit: to the batch process, which hands it to the trainer.
    slurm(slurm_cluster, "scontrol", "release", str(job[warned]))
    wait_for(lambda: epochs(db, warned), timeout=120, what="the first epoch")
    slurm(slurm_cluster, "scancel", "--signal=USR2", "--batch", str(job[warned]))
    again = wait_for(
        lambda: (job_of(db, warned) or 0) > job[warned] and job_of(db, warned), timeout=60, what="a new job"
    )
    output = (settings.run_dir(warned) / f"slurm-{job[warned]}.out").read_text()
    assert f"could not requeue job {job[warned]}" in output and "scontrol" in output, output
    stop = re.search(r"checkpointed after batch (\d+) of epoch (\d+) \(step (\d+)\)", output)
    assert stop is not None, output
    slurm(slurm_cluster, "scontrol", "release", str(again))
    ended(db, warned, timeout=120)
    run = get(db, warned)
    assert run.status == RunStatus.succeeded, run.error
    assert (run.attempt, run.slurm_job_id, run.training_failures) == (1, again, 0)  # the same attempt
    assert epochs(db, warned) == [(1, 1), (2, 1)]
    assert run.start_epoch == 1 and run.start_step == int(stop.group(3))

    # Both on the spare node; then it goes down. One job may not be requeued (as a user's --no-requeue).
    slurm(slurm_cluster, "scontrol", "release", str(job[lost]), str(job[requeued]))
    wait_for(lambda: epochs(db, lost) and epochs(db, requeued), timeout=120, what="an epoch of each")
    slurm(slurm_cluster, "scontrol", "update", f"JobId={job[lost]}", "Requeue=0")
    slurm(slurm_cluster, "scontrol", "update", f"NodeName={SPARE}", "State=DOWN", "Reason=tricklab test")
    try:
        wait_for(lambda: get(db, lost).attempt == 2, timeout=60, what="the run handed back and claimed again")
        assert get(db, lost).error == f"Slurm job {job[lost]} lost its node (NODE_FAIL)"
        assert (get(db, lost).infrastructure_failures, get(db, lost).training_failures) == (1, 0)
        wait_for(lambda: get(db, requeued).slurm_restarts, timeout=60, what="Slurm to requeue the job")
        assert get(db, requeued).error == (
            f"Slurm job {job[requeued]} was requeued (1×) after node failure on {SPARE}; "
            "it resumes from its last checkpoint"
        )
        assert get(db, requeued).status == RunStatus.running and get(db, requeued).attempt == 1
    finally:  # a down node that answers comes back by itself (ReturnToService=2); else it is resumed here
        if re.match("down|drain", slurm(slurm_cluster, "sinfo", "--noheader", "--nodes", SPARE, "-o", "%T")):
            slurm(slurm_cluster, "scontrol", "update", f"NodeName={SPARE}", "State=RESUME")
    retry = wait_for(lambda: (job_of(db, lost) or 0) > job[lost] and job_of(db, lost), timeout=60, what="a new job")
    slurm(slurm_cluster, "scontrol", "release", str(retry))
    ended(db, lost, timeout=120)
    run = get(db, lost)
    assert run.status == RunStatus.succeeded, run.error
    assert run.start_epoch >= 1  # resumed from its checkpoint, not from scratch
    assert epochs(db, lost)[0] == (1, 1) and [epoch for epoch, _ in epochs(db, lost)] == [1, 2, 3]
    # The requeued job would start again after Slurm's BeginTime (two minutes: the node may still hold its
    # first start); resuming a requeued job is test_slurm_endings.py's. Cancelled here, from the shell.
    slurm(slurm_cluster, "scancel", str(job[requeued]))
    ended(db, requeued, timeout=60)


def test_a_job_over_its_memory_and_one_gone_from_squeue_end_by_slurms_word(slurm_cluster, slurm_settings, dispatchers):
    """scripts/slurm's Slurm kills a step over its memory (JobAcctGather's OverMemoryKill, no cgroups) and
    says only FAILED: the run names the memory, from what slurmstepd wrote into the job's output. A job gone
    from squeue ends by sacct's final state (scripts/slurm keeps accounting in slurmdbd)."""
    settings, db = slurm_settings
    # A run whose job squeue no longer lists under its comment (past MinJobAge, while no dispatcher ran).
    gone = create(db, settings, name="gone", priority=100)
    ended_job = int(slurm(slurm_cluster, "sbatch", "--parsable", "--output=/dev/null", "--wrap=exit 3").strip())
    with db.session(write=True) as session:
        claim = jobs.claim_run(session=session, worker=f"{jobs.SLURM_WORKER_PREFIX}gone:1", stale_after_seconds=60)
        assert claim is not None and claim.run_id == gone
        record_job(session=session, run_id=gone, attempt=1, job_id=ended_job, state="RUNNING", nodes=HOST)
    accounted = ("sacct", "--noheader", "--parsable2", "--allocations", "-o", "State", "-j", str(ended_job))
    wait_for(lambda: slurm(slurm_cluster, *accounted).strip() == "FAILED", timeout=30, what="sacct to know the job")
    too_big = create(db, settings, name="too-big")
    dispatchers(slurm_cluster, settings, "--mem-per-task", "100M")  # less than the trainer imports
    ended(db, gone, too_big, timeout=120)

    run = get(db, too_big)
    assert run.status == RunStatus.failed
    assert re.fullmatch(
        rf"Slurm job {run.slurm_job_id} ran out of memory \(OUT_OF_MEMORY\): ask for more with --mem-per-task "
        r"\(used \d+ MiB of its 100 MiB\)",
        run.error or "",
    ), run.error
    # Without accounting it would be lost (no end marker) and handed back to the queue.
    assert (get(db, gone).status, get(db, gone).error) == (
        RunStatus.failed,
        f"Slurm job {ended_job} failed (FAILED) before its trainer reported an end; see its slurm-*.out",
    )


# The tolerance of tests/trainer/test_distributed.py: 2 gloo processes and 1 agree to 1e-5 in the gradient.
LOSS_RTOL = 1e-4


def ranks_by_node(job_id: int | None) -> dict[str, set[str]]:
    """The job's processes on this host, by the node Slurm started them on (SLURMD_NODENAME in their
    environment; both slurmds run here): the torchrun ranks' RANK, "-" for the other processes."""
    found: dict[str, set[str]] = {}
    for entry in Path("/proc").iterdir():
        try:
            environ = dict(
                item.decode().split("=", 1) for item in (entry / "environ").read_bytes().split(b"\0") if b"=" in item
            )
        except OSError:  # not a process, or one that just ended
            continue
        if environ.get("SLURM_JOB_ID") == str(job_id):
            found.setdefault(environ.get("SLURMD_NODENAME", "?"), set()).add(environ.get("RANK", "-"))
    return found


def test_two_nodes_train_over_gloo_as_one_process_does_and_a_cancel_ends_both(
    slurm_cluster, slurm_settings, dispatchers
):
    """`--nodes 2` in partition "both" (the host's node and the spare one): one torchrun on each node by
    srun, the rendezvous on the first node of the job's node list, one gloo process per node."""
    settings, db = slurm_settings
    run_id = create(db, settings, name="two-nodes", epochs=1, priority=10)
    cancelled = create(db, settings, name="two-nodes-cancelled", epochs=30)
    dispatchers(slurm_cluster, settings, "--partition", "both", "--nodes", "2", "--tasks-per-node", "1")
    # The same config on one process, beside it, as `tricklab train` would.
    alone = settings.runs_dir / "alone"
    alone.mkdir(parents=True)
    with db.session() as session:
        config = dict(session.get_one(Run, run_id).config)
    RunConfig.from_dict({**config, "runtime": {**config["runtime"], "device": "cpu"}}).save(alone / "config.json")
    reference = subprocess.run(
        [*default_trainer_command(), str(alone)], capture_output=True, text=True, timeout=300, check=False
    )
    assert reference.returncode == 0, reference.stderr[-2000:]
    ended(db, run_id, timeout=240)

    run = get(db, run_id)
    assert run.status == RunStatus.succeeded, run.error
    assert (run.world_size, run.devices) == (2, "2 × CPU (gloo)")
    nodes = f"{SPARE},{HOST}" if SPARE < HOST else f"{HOST},{SPARE}"  # Slurm's node list is sorted
    assert run.slurm_nodes == nodes
    with db.session() as session:
        public = run_service.public_run(session=session, settings=settings, run=session.get_one(Run, run_id))
    assert public.slurm == f"Slurm {run.slurm_job_id} on {nodes}"
    with db.session() as session:
        row = session.scalars(select(EpochMetric).where(EpochMetric.run_id == run_id)).one()
    expected = json.loads((alone / "metrics.jsonl").read_text().splitlines()[0])
    assert row.train_top1 == expected["train_top1"]
    assert math.isclose(row.train_loss or 0, expected["train_loss"], rel_tol=LOSS_RTOL)

    # One rank on each node, until the dispatcher's cancel ends the job's processes on both.
    job = wait_for(partial(job_of, db, cancelled), timeout=60, what="its job")
    wait_for(lambda: epochs(db, cancelled), timeout=120, what="an epoch on two nodes")
    ranks = ranks_by_node(job)
    assert {node: ranks[node] - {"-"} for node in ranks} in ({SPARE: {"0"}, HOST: {"1"}}, {SPARE: {"1"}, HOST: {"0"}})
    with db.session(write=True) as session:
        run_service.cancel_run(session=session, run_id=cancelled)
    ended(db, cancelled, timeout=120)
    assert get(db, cancelled).status == RunStatus.cancelled
    wait_for(lambda: not ranks_by_node(job), timeout=60, what="the job's processes on both nodes to end")
