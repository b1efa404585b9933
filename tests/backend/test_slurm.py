"""``tricklab worker --slurm`` end to end on a real single-host Slurm (scripts/slurm): each run one job,
trained inside it by the worker's own path; Slurm's ends, cancels, requeues and preemptions seen on the
run; the dispatcher killed and restarted submitting nothing twice."""

from __future__ import annotations

import json
import math
import signal
import socket
import subprocess
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select
from testlib.slurm import slurm, start_dispatcher

from backend.models import EpochMetric, Run, RunStatus
from backend.services import queue as jobs
from backend.services import runs as run_service
from backend.settings import default_trainer_command
from trainer.config import RunConfig
from tricklab.local import wait_for

TINY: dict[str, Any] = {
    "model": {"arch": "resnet18", "pretrained": False},
    "batch_size": 16,
    "data": {"image_size": 32, "num_workers": 0},
}
HOST = socket.gethostname().split(".")[0]


def create(db, settings, *, name: str, epochs: int = 1, priority: int = 0, image_size: int = 32, **config: Any) -> int:
    data = {**TINY["data"], "root": str(settings.data_roots[0]), "image_size": image_size}
    values = {**TINY, "name": name, "epochs": epochs, "data": data, **config}
    with db.session(write=True) as session:
        return run_service.create_run(session=session, settings=settings, config=values, priority=priority).id


def get(db, run_id: int) -> Run:
    with db.session() as session:
        return session.get_one(Run, run_id)


def job_of(db, run_id: int) -> int | None:
    return get(db, run_id).slurm_job_id


def epochs(db, run_id: int) -> list[tuple[int, int]]:
    with db.session() as session:
        rows = session.scalars(select(EpochMetric).where(EpochMetric.run_id == run_id).order_by(EpochMetric.epoch))
        return [(row.epoch, row.attempt) for row in rows]


def comments(conf: str) -> list[str]:
    """The comment of every job squeue lists, ended ones too."""
    return slurm(conf, "squeue", "--noheader", "--states=all", "-O", "Comment:|").split()


def ended(db, *run_ids: int, timeout: float) -> None:
    finals = {RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled}
    wait_for(lambda: all(get(db, run_id).status in finals for run_id in run_ids), timeout=timeout, what="runs to end")


@pytest.fixture
def real(make_settings, make_database, sqlite_url, demo_dataset, tmp_path):
    settings = make_settings(sqlite_url, data_roots=[demo_dataset], trainer_command=default_trainer_command())
    return settings, make_database(settings)


@pytest.fixture
def dispatchers(tmp_path):
    started: list[subprocess.Popen] = []

    def start(conf: str, settings, *args: str) -> subprocess.Popen:
        process = start_dispatcher(conf, settings.environ(), tmp_path / "dispatcher.log", *args)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)


def test_runs_train_in_slurm_jobs_teacher_first_and_nothing_twice(slurm_cluster, real, dispatchers):
    settings, db = real
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
    # One job per attempt, whatever the dispatchers went through.
    mine = [comment for comment in comments(slurm_cluster) if comment.rsplit(":", 1)[0].startswith("tricklab:")]
    for run_id, run in runs.items():
        assert sum(comment.startswith(f"tricklab:{run_id}:{run.attempt}:") for comment in mine) == 1


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
    url = live_server(settings)
    dispatchers(slurm_cluster, settings, "--warning-lead", "0", "--sbatch=--hold")
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
    states = dict(
        line.split("|")[:2]
        for line in slurm(slurm_cluster, "squeue", "-h", "--states=all", "-O", "JobID:|,State:|").split()
    )
    assert states[str(job[held])] == "CANCELLED"  # scancelled, not left waiting in Slurm
    assert states[str(job[by_api])] in ("COMPLETED", "CANCELLED")

    ended(db, timed, timeout=150)  # slurmctld checks time limits about once a minute
    assert get(db, timed).status == RunStatus.failed
    assert get(db, timed).error == f"Slurm job {job[timed]} hit its time limit (TIMEOUT)"


def test_requeued_and_preempted_jobs_resume_each_epoch_once(slurm_cluster, real, dispatchers):
    settings, db = real
    run_id = create(db, settings, name="resumes", epochs=6, image_size=48)
    dispatchers(slurm_cluster, settings, "--warning-lead", "60")
    job = wait_for(lambda: get(db, run_id).slurm_job_id, timeout=60, what="its job")

    def release_after(restarts: int) -> None:
        """Slurm holds a requeued job for two minutes (BeginTime); the test lets it start at once."""
        wait_for(
            lambda: (get(db, run_id).slurm_restarts or 0) >= restarts and get(db, run_id).slurm_state == "PENDING",
            timeout=60,
            what=f"the job requeued ({restarts})",
        )
        slurm(slurm_cluster, "scontrol", "update", f"JobId={job}", "StartTime=now")

    # Requeued from a shell: Slurm's SIGTERM, no warning; the next start resumes after epoch 1 or later.
    wait_for(lambda: epochs(db, run_id), timeout=120, what="the first epoch")
    slurm(slurm_cluster, "scontrol", "requeue", str(job))
    release_after(1)
    # Preempted by a job of the urgent partition that needs every CPU: the warning signal first, the trainer
    # stops at a step and the job requeues itself.
    wait_for(lambda: get(db, run_id).start_epoch > 0 and len(epochs(db, run_id)) >= 3, timeout=120, what="epoch 3")
    slurm(slurm_cluster, "sbatch", "--partition=urgent", "--ntasks=8", "--output=/dev/null", "--wrap=sleep 2")
    release_after(2)
    ended(db, run_id, timeout=180)

    run = get(db, run_id)
    assert run.status == RunStatus.succeeded, run.error
    assert (run.attempt, run.slurm_job_id) == (1, job)  # one attempt, one job, started three times
    assert (run.slurm_restarts or 0) >= 2 and run.start_epoch >= 3
    assert epochs(db, run_id) == [(epoch, 1) for epoch in range(1, 7)]
    output = (settings.run_dir(run_id) / f"slurm-{job}.out").read_text()
    assert "DUE TO JOB REQUEUE" in output and f"job {job} requeued" in output


# The tolerance of tests/trainer/test_distributed.py: 2 gloo processes and 1 agree to 1e-5 in the gradient.
LOSS_RTOL = 1e-4


def test_two_tasks_over_gloo_train_as_one_process_does(slurm_cluster, real, dispatchers):
    settings, db = real
    run_id = create(db, settings, name="two-tasks", epochs=1)
    dispatchers(slurm_cluster, settings, "--tasks-per-node", "2")
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
    with db.session() as session:
        row = session.scalars(select(EpochMetric).where(EpochMetric.run_id == run_id)).one()
    expected = json.loads((alone / "metrics.jsonl").read_text().splitlines()[0])
    assert row.train_top1 == expected["train_top1"]
    assert math.isclose(row.train_loss or 0, expected["train_loss"], rel_tol=LOSS_RTOL)
