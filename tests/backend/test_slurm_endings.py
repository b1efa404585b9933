"""How Slurm's side ends, stops and restarts runs of ``tricklab worker --slurm``, on a real single-host
Slurm: scancel from a shell, cancel from the API, a held job's reason, a time limit, a requeue from a shell
and a preemption, each resumed with every epoch stored once."""

from __future__ import annotations

import re
import time
from functools import partial

from testlib.slurm import HOST, create, ended, epochs, get, job_field, job_of, slurm

from backend.models import RunStatus
from backend.services import queue as jobs
from backend.services.slurm_runs import record_job
from tricklab.local import wait_for

STEPS_PER_EPOCH = 2  # the demo dataset's 32 training images in testlib.slurm's batches of 16


def test_cancels_pending_reason_and_time_limit(
    slurm_cluster, make_settings, make_database, sqlite_url, dispatchers, live_server
):
    """Fake trainers that hang until stopped; every job is submitted held, and released one by one."""
    import httpx

    settings = make_settings(sqlite_url)
    db = make_database(settings)
    by_shell, by_api, held, timed = (
        create(db, settings, name=f"hang-{what}") for what in ("shell", "api", "held", "time")
    )
    # A job that left squeue while no dispatcher watched (past MinJobAge), leaving no end marker; the test
    # cluster keeps no accounting, so sacct cannot say how it ended either.
    vanished = create(db, settings, name="hang-vanished", priority=100)
    with db.session(write=True) as session:
        claim = jobs.claim_run(session=session, worker=f"{jobs.SLURM_WORKER_PREFIX}gone:1", stale_after_seconds=60)
        assert claim is not None and claim.run_id == vanished
        record_job(session=session, run_id=vanished, attempt=1, job_id=99999999, state="RUNNING", nodes=HOST)
    url = live_server(settings)
    dispatchers(slurm_cluster, settings, "--warning-lead", "0", "--sbatch=--hold", "--max-pending", "8")
    job = {
        run_id: wait_for(partial(job_of, db, run_id), timeout=60, what="its job")
        for run_id in (by_shell, by_api, held, timed)
    }
    slurm(slurm_cluster, "scontrol", "update", f"JobId={job[timed]}", "TimeLimit=0:05")
    slurm(slurm_cluster, "scontrol", "release", *(str(job[run_id]) for run_id in (by_shell, by_api, timed)))

    def training(run_id: int) -> bool:
        return (settings.run_dir(run_id) / "child.pid").is_file() and get(db, run_id).slurm_state == "RUNNING"

    wait_for(lambda: training(by_shell) and training(by_api), timeout=60, what="two jobs to train")
    # Held longer than a silent worker may be (stale_after_seconds is 2 here): still Slurm's, not requeued.
    answer = httpx.get(f"{url}/api/v1/runs/{held}").json()
    assert (answer["status"], answer["attempt"], answer["slurm_state"]) == ("running", 1, "PENDING")
    assert answer["slurm"] == "queued in Slurm (JobHeldUser)"

    slurm(slurm_cluster, "scancel", str(job[by_shell]))
    for run_id in (by_api, held):
        assert httpx.post(f"{url}/api/v1/runs/{run_id}/cancel").status_code == 200
    ended(db, by_shell, by_api, held, timeout=60)
    assert get(db, by_shell).status == RunStatus.cancelled
    assert get(db, by_shell).error == f"cancelled in Slurm (job {job[by_shell]})"
    assert get(db, by_api).status == RunStatus.cancelled
    assert get(db, held).status == RunStatus.cancelled

    def state(job_id: int) -> str:
        return job_field(slurm_cluster, job_id, "State")

    assert state(job[held]) == "CANCELLED"  # scancelled, not left waiting in Slurm
    wait_for(lambda: state(job[by_api]) in ("COMPLETED", "CANCELLED"), timeout=60, what="the cancelled job to end")

    # Lost, never succeeded: back to the queue (no training try charged), and submitted again.
    lost = get(db, vanished)
    assert lost.error == "Slurm job 99999999 vanished from squeue without its end marker (last seen RUNNING): lost"
    assert (lost.attempt, lost.infrastructure_failures, lost.training_failures) == (2, 1, 0)
    assert httpx.post(f"{url}/api/v1/runs/{vanished}/cancel").status_code == 200  # its held job goes too
    ended(db, vanished, timeout=60)

    ended(db, timed, timeout=150)  # slurmctld checks time limits about once a minute
    assert get(db, timed).status == RunStatus.failed
    assert get(db, timed).error == f"Slurm job {job[timed]} hit its time limit (TIMEOUT)"


def test_requeued_and_preempted_jobs_resume_each_epoch_once(slurm_cluster, slurm_settings, dispatchers):
    settings, db = slurm_settings
    run_id = create(db, settings, name="resumes", epochs=6, image_size=48)
    dispatchers(slurm_cluster, settings, "--warning-lead", "60", "--partition", "preemptible")
    job = wait_for(lambda: get(db, run_id).slurm_job_id, timeout=60, what="its job")

    def release_after(restarts: int) -> None:
        """Slurm holds a requeued job for two minutes (BeginTime); the test lets it start at once, but in a
        later second than its last start ended: slurmd compares the new start's credential with the revoked
        one's in whole seconds, and refuses a start in the same second ("Job credential revoked": FAILED)."""
        wait_for(
            lambda: (get(db, run_id).slurm_restarts or 0) >= restarts and get(db, run_id).slurm_state == "PENDING",
            timeout=60,
            what=f"the job requeued ({restarts})",
        )
        waiting_since = int(time.time())
        wait_for(lambda: int(time.time()) > waiting_since, timeout=2, what="the next second")
        slurm(slurm_cluster, "scontrol", "update", f"JobId={job}", "StartTime=now")

    # Requeued from a shell: Slurm's SIGTERM, no warning; the next start resumes after epoch 1 or later.
    wait_for(lambda: epochs(db, run_id), timeout=120, what="the first epoch")
    slurm(slurm_cluster, "scontrol", "requeue", str(job))
    release_after(1)
    # Preempted by a job of the urgent partition: the warning signal first, the trainer
    # stops at a step, checkpoints there, and the job requeues itself.
    wait_for(lambda: get(db, run_id).start_epoch > 0 and len(epochs(db, run_id)) >= 3, timeout=120, what="epoch 3")
    # One CPU more than is idle: only this job, the one preemptible job, has to make room (other tests' jobs
    # in the main partition are never preempted).
    idle = int(slurm(slurm_cluster, "sinfo", "-h", "--partition", "urgent", "-o", "%C").split("/")[1])
    slurm(slurm_cluster, "sbatch", "--partition=urgent", f"--ntasks={idle + 1}", "--output=/dev/null", "--wrap=sleep 2")
    release_after(2)
    ended(db, run_id, timeout=180)

    run = get(db, run_id)
    assert run.status == RunStatus.succeeded, run.error
    assert (run.attempt, run.slurm_job_id) == (1, job)  # one attempt, one job, started three times
    assert (run.slurm_restarts or 0) >= 2 and run.start_epoch >= 3
    assert epochs(db, run_id) == [(epoch, 1) for epoch in range(1, 7)]
    output = (settings.run_dir(run_id) / f"slurm-{job}.out").read_text()
    assert "DUE TO JOB REQUEUE" in output and f"job {job} requeued" in output
    # The preempted start checkpointed mid-epoch, and the next one went on from that step.
    stop = re.search(r"checkpointed after batch (\d+) of epoch (\d+) \(step (\d+)\)", output)
    assert stop is not None, output
    batch, epoch, step = map(int, stop.groups())
    assert 1 <= epoch <= 6 and step == (epoch - 1) * STEPS_PER_EPOCH + batch
