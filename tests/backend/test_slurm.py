"""``tricklab worker --slurm`` end to end on a real single-host Slurm (scripts/slurm): runs trained in Slurm
jobs by the worker's own path, a teacher first; the dispatcher killed and
restarted submitting nothing twice. (Slurm's ends, cancels, requeues: test_slurm_endings.py; a run on two
nodes: test_slurm_node_ends.py, which owns the spare node.)"""

from __future__ import annotations

import signal
import socket

import pytest
from testlib.slurm import HOST, comments, create, ended, epochs, get, job_field

from backend.models import Run, RunStatus
from backend.services import queue as jobs
from backend.services import runs as run_service
from backend.services.workers import list_workers
from backend.worker.slurm.job import rendezvous
from tricklab.local import wait_for


def test_runs_train_in_slurm_jobs_teacher_first_and_nothing_twice(slurm_cluster, slurm_settings, dispatchers):
    settings, db = slurm_settings
    # A dispatcher killed between its claim and sbatch leaves this: the attempt stored, no job.
    orphan = create(db, settings, name="orphan", priority=100)
    with db.session(write=True) as session:
        claim = jobs.claim_run(session=session, worker=f"{jobs.SLURM_WORKER_PREFIX}gone:1", stale_after_seconds=60)
    assert claim is not None and claim.run_id == orphan
    teacher = create(db, settings, name="teacher")
    student = create(db, settings, name="student", priority=10, tricks={"kd": {"teacher": teacher}})

    first = dispatchers(slurm_cluster, settings)
    wait_for(lambda: get(db, teacher).slurm_job_id, timeout=60, what="the teacher's job")
    first.send_signal(signal.SIGKILL)  # no goodbye: the next dispatcher finds the jobs by their comments
    first.wait()
    dispatchers(slurm_cluster, settings)
    ended(db, orphan, teacher, student, timeout=240)

    runs = {run_id: get(db, run_id) for run_id in (orphan, teacher, student)}
    assert {run.status for run in runs.values()} == {RunStatus.succeeded}, {r.id: r.error for r in runs.values()}
    # The teacher's job, though of lower priority, was submitted and ended before the student's started.
    assert (runs[teacher].slurm_job_id or 0) < (runs[student].slurm_job_id or 0)
    assert str(runs[teacher].finished_at) <= str(runs[student].started_at)
    for run_id, run in runs.items():
        assert epochs(db, run_id) == [(1, run.attempt)]
        assert run.slurm_nodes == HOST
        assert (settings.run_dir(run_id) / f"slurm-{run.slurm_job_id}.out").is_file()
        with db.session() as session:
            public = run_service.public_run(session=session, settings=settings, run=session.get_one(Run, run_id))
        assert public.slurm == f"Slurm {run.slurm_job_id} on {HOST}"
    # The dispatcher and each job's worker are in the registry: the pages know runs will start.
    with db.session() as session:
        names = [worker.name for worker in list_workers(session=session, stale_after_seconds=3600).data]
    assert any(name.startswith(jobs.SLURM_WORKER_PREFIX) for name in names)
    assert f"slurm job {runs[student].slurm_job_id} on {socket.gethostname()}" in names
    # One job per attempt, whatever the dispatchers went through (jobs of other tests carry other sites).
    listed = comments(slurm_cluster)
    for run_id, run in runs.items():
        comment = job_field(slurm_cluster, run.slurm_job_id, "Comment")
        assert comment.startswith(f"tricklab:{run_id}:{run.attempt}:")
        assert listed.count(comment) == 1


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--partition", "gpu"], "--partition is for --slurm, which was not given"),
        (["--slurm", "--gpus", "0"], "--device, --gpus, --procs and --once are for a worker on this host"),
        (["--slurm", "--mem-per-task", "lots"], None),
    ],
)
def test_slurm_arguments_out_of_place_are_refused(args, said, sqlite_url, monkeypatch):
    from backend.cli.main import main

    monkeypatch.setenv("TRICKLAB_DATABASE_URL", sqlite_url)
    with pytest.raises(SystemExit) as exit_info:
        main(["worker", *args])
    assert exit_info.value.code == 2 if said is None else str(exit_info.value.code).endswith(said)


@pytest.mark.parametrize(
    ("nodelist", "first"), [("gpu[03-04,07],cpu1", "gpu03"), ("node7", "node7"), ("a1,b2", "a1"), ("n[5]", "n5")]
)
def test_the_rendezvous_is_on_the_first_node_of_the_jobs_node_list(nodelist, first):
    """What a multi-node job's torchruns are told: the first node at the address Slurm gives it (its
    NodeAddr); a real two-node job is test_slurm_node_ends.py's."""
    environ = {"SLURM_JOB_NODELIST": nodelist, "SLURM_JOB_ID": "4121"}
    options = rendezvous(environ, nodes=2, address={first: "10.0.0.3"}.__getitem__)
    assert options[options.index("--rdzv-endpoint") + 1] == f"10.0.0.3:{29500 + 4121}"
    assert rendezvous(environ, nodes=2)[options.index("--rdzv-endpoint") + 1] == f"{first}:{29500 + 4121}"
    assert options[options.index("--nnodes") + 1] == "2"
    assert "SIGUSR2" in options[options.index("--signals-to-handle") + 1]
