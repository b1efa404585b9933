"""Real worker processes with a fake trainer (tests/backend/fake_trainer.py): no torch needed."""

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from backend.models import EpochMetric, FailureKind, Run, RunStatus
from backend.services import runs as run_service
from tricklab.local import wait_for


def submit(db, settings, data_root, priority=0, **config):
    with db.session(write=True) as session:
        config.setdefault("data", {"root": str(data_root)})
        return run_service.create_run(session=session, settings=settings, config=config, priority=priority).id


def get(db, run_id) -> Run:
    with db.session() as session:
        return session.get(Run, run_id)


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def child_pid(settings, run_id) -> int:
    path = settings.run_dir(run_id) / "child.pid"
    return wait_for(
        lambda: path.exists() and path.read_text() and int(path.read_text()), timeout=30, what="the trainer to start"
    )


def test_four_workers_claim_forty_runs_exactly_once(
    database_url, make_settings, make_database, start_worker, data_root, record_property
):
    # Long stale timeout: on a loaded machine a starved worker must not lose its run to the others,
    # which would hide a double claim behind a legitimate takeover.
    settings = make_settings(database_url, stale_after_seconds=60)
    db = make_database(settings)
    run_ids = [submit(db, settings, data_root, name=f"r{i}", epochs=2) for i in range(40)]
    started = time.monotonic()
    workers = [start_worker(settings, "--exit-when-idle") for _ in range(4)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0
    elapsed = time.monotonic() - started

    with db.session() as session:
        runs = session.scalars(select(Run).where(Run.id.in_(run_ids))).all()
        epochs = session.scalar(select(func.count()).select_from(EpochMetric))
    assert {run.status for run in runs} == {RunStatus.succeeded}
    assert {run.attempt for run in runs} == {1}  # each claimed once
    assert epochs == 80
    for run_id in run_ids:  # and each trainer started once
        assert len(settings.run_dir(run_id).joinpath("invocations").read_text().splitlines()) == 1
    per_worker = Counter(run.worker for run in runs)
    assert len(per_worker) >= 2, per_worker  # the work was shared
    figures = (
        f"{database_url.split(':')[0]}: 40 runs, 4 workers, {elapsed:.1f} s wall (incl. worker start), "
        f"runs per worker {sorted(per_worker.values(), reverse=True)}"
    )
    record_property("claim_figures", figures)
    print(figures)


def test_the_worker_prepares_the_folder_and_resolves_a_teacher(
    sqlite_url, make_settings, make_database, start_worker, data_root
):
    settings = make_settings(sqlite_url)
    db = make_database(settings)
    teacher = submit(db, settings, data_root, name="teacher", epochs=1)
    student = submit(db, settings, data_root, name="student", epochs=2, tricks={"kd": {"teacher": teacher}}, priority=1)
    assert start_worker(settings, "--device", "cpu", "--exit-when-idle").wait(timeout=60) == 0
    assert get(db, teacher).status == get(db, student).status == RunStatus.succeeded
    folder = settings.run_dir(student)
    config = json.loads((folder / "config.json").read_text())
    assert config["tricks"]["kd"]["teacher"] == str(settings.run_dir(teacher))
    assert config["runtime"]["device"] == "cpu"
    assert (folder / "ATTEMPT").read_text().strip() == "1"
    assert json.loads((folder / "child.env").read_text()) == {"CUDA_VISIBLE_DEVICES": ""}
    run = get(db, student)
    assert (run.test_top1, run.checkpoint_epoch, run.peak_epoch, run.test_loss) == (42.0, 2, 2, 0.5)
    # Measured once the trainer has exited, so the runs list shows the folder as it stays.
    assert run.disk_bytes == sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) > 0
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(EpochMetric).where(EpochMetric.run_id == student)) == 2


def test_a_diverged_loss_and_malformed_events_do_not_break_the_run(
    sqlite_url, make_settings, make_database, start_worker, data_root
):
    settings = make_settings(sqlite_url)
    db = make_database(settings)
    run_id = submit(db, settings, data_root, name="nan", epochs=2)
    assert start_worker(settings, "--once").wait(timeout=60) == 0
    assert get(db, run_id).status == RunStatus.succeeded
    with db.session() as session:
        rows = session.scalars(
            select(EpochMetric).where(EpochMetric.run_id == run_id).order_by(EpochMetric.epoch)
        ).all()
    assert [(row.epoch, row.train_loss, row.valid_loss) for row in rows] == [(1, None, 1.5), (2, None, 0.75)]


def test_a_failure_keeps_the_stderr_tail_and_retries_up_to_max_attempts(
    sqlite_url, make_settings, make_database, start_worker, data_root
):
    settings = make_settings(sqlite_url, max_attempts=2)
    db = make_database(settings)
    run_id = submit(db, settings, data_root, name="fail", epochs=3)
    assert start_worker(settings, "--exit-when-idle").wait(timeout=60) == 0
    run = get(db, run_id)
    assert (run.status, run.failure_kind, run.attempt, run.training_failures) == (
        RunStatus.failed,
        FailureKind.training,
        2,
        2,
    )
    assert run.error is not None
    assert run.error.startswith("RuntimeError: fake failure")
    assert "Traceback (most recent call last)" in run.error


def test_a_database_outage_while_the_trainer_finishes_loses_nothing(
    postgres_url, make_settings, make_database, start_worker, data_root
):
    settings = make_settings(postgres_url, stale_after_seconds=30)
    db = make_database(settings)
    run_id = submit(db, settings, data_root, name="slow", epochs=4)
    start_worker(settings)
    trainer = child_pid(settings, run_id)
    name = make_url(postgres_url).database
    admin = create_engine(make_url(postgres_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" CONNECTION LIMIT 0'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )
            # Its epochs and its result all arrive while no connection is let in.
            wait_for(lambda: not alive(trainer), timeout=30, what="the trainer to finish")
            connection.execute(text(f'ALTER DATABASE "{name}" CONNECTION LIMIT -1'))
    finally:
        admin.dispose()
    wait_for(lambda: get(db, run_id).status == RunStatus.succeeded, timeout=20, what="the run to succeed")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(EpochMetric).where(EpochMetric.run_id == run_id)) == 4
    assert get(db, run_id).attempt == 1


def test_cancel_stops_a_running_trainer_within_two_seconds(
    sqlite_url, make_settings, make_database, start_worker, data_root
):
    settings = make_settings(sqlite_url)
    db = make_database(settings)
    run_id = submit(db, settings, data_root, name="hang")
    start_worker(settings)
    pid = child_pid(settings, run_id)
    with db.session(write=True) as session:
        run_service.cancel_run(session=session, run_id=run_id)
    asked = time.monotonic()
    wait_for(lambda: get(db, run_id).status == RunStatus.cancelled, timeout=5, what="the run to be cancelled")
    assert time.monotonic() - asked < 2.5
    assert not alive(pid)
    assert get(db, run_id).finished_at is not None


def test_a_killed_worker_takes_its_trainer_along_and_the_next_worker_takes_over(
    sqlite_url, make_settings, make_database, start_worker, data_root
):
    settings = make_settings(sqlite_url)
    db = make_database(settings)
    run_id = submit(db, settings, data_root, name="hang")
    first = start_worker(settings)
    pid = child_pid(settings, run_id)
    first.send_signal(signal.SIGKILL)
    first.wait()
    wait_for(lambda: not alive(pid), timeout=3, what="the orphaned trainer to die (PR_SET_PDEATHSIG)")

    start_worker(settings)
    wait_for(lambda: get(db, run_id).attempt == 2, timeout=15, what="the stale run to be claimed again")
    run = get(db, run_id)
    assert run.status == RunStatus.running and run.failure_kind == FailureKind.infrastructure
    assert run.error is not None
    assert run.infrastructure_failures == 1 and "stopped responding" in run.error
    # The claim is committed before the worker writes the attempt into the run folder.
    attempt_file = settings.run_dir(run_id) / "ATTEMPT"
    wait_for(lambda: attempt_file.read_text().strip() == "2", timeout=15, what="the second attempt's ATTEMPT file")


def test_sigterm_hands_the_run_back_to_the_queue(sqlite_url, make_settings, make_database, start_worker, data_root):
    settings = make_settings(sqlite_url)
    db = make_database(settings)
    run_id = submit(db, settings, data_root, name="hang")
    worker = start_worker(settings)
    pid = child_pid(settings, run_id)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    assert not alive(pid)
    run = get(db, run_id)
    assert (run.status, run.failure_kind, run.worker) == (RunStatus.queued, FailureKind.infrastructure, None)
    assert run.error is not None
    assert "was stopped" in run.error


def test_a_missing_trainer_command_fails_the_run_with_a_message(
    sqlite_url, make_settings, make_database, start_worker, data_root
):
    settings = make_settings(sqlite_url, trainer_command=["/nonexistent/trainer"])
    db = make_database(settings)
    run_id = submit(db, settings, data_root)
    assert start_worker(settings, "--once").wait(timeout=30) == 0
    run = get(db, run_id)
    assert run.error is not None
    assert run.status == RunStatus.failed and "could not start the trainer '/nonexistent/trainer'" in run.error


@pytest.mark.parametrize("args", [["--device", "gpu"], ["--device", "cuda:x"]])
def test_bad_worker_arguments_are_refused(args):
    from backend.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["worker", *args])
    assert exit_info.value.code == 2


def test_bad_settings_end_the_worker_with_a_message(monkeypatch):
    from backend.cli.main import main

    monkeypatch.setitem(os.environ, "TRICKLAB_MAX_ATTEMPTS", "0")
    with pytest.raises(SystemExit, match="TRICKLAB_MAX_ATTEMPTS"):
        main(["worker", "--once"])
    monkeypatch.setitem(os.environ, "TRICKLAB_DATA_ROOTS", "/data")
    with pytest.raises(SystemExit, match="list settings are JSON"):
        main(["serve"])
