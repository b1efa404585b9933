"""The real trainer (python -m trainer run) on the tiny generated dataset, through real processes."""

import os
import re
import shutil
import signal
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from sqlalchemy import select
from testlib.events import iter_events
from testlib.models import TINY_ARCH

from backend.db import Database
from backend.models import EpochMetric, FailureKind, Run, RunStatus
from backend.services import runs as run_service
from backend.settings import default_trainer_command
from tricklab.local import serving, tricklab_serve, wait_for

# Well under a second per epoch on a CPU.
TINY: dict[str, Any] = {
    "model": {"arch": TINY_ARCH, "pretrained": False},
    "epochs": 3,
    "batch_size": 16,
    "data": {"image_size": 32, "num_workers": 0},
}


def tiny_config(demo_dataset: Path, **extra) -> dict:
    return {**TINY, "data": {**TINY["data"], "root": str(demo_dataset)}, **extra}


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_serve_launches_a_demo_run_that_streams_its_epochs_and_succeeds(
    make_settings, sqlite_url, demo_dataset, tmp_path, record_property
):
    settings = make_settings(sqlite_url, data_roots=[demo_dataset], trainer_command=default_trainer_command())
    env = {**os.environ, **settings.environ()}
    with serving(cwd=tmp_path, env=env, log=tmp_path / "serve.log", command=tricklab_serve(), timeout=60) as server:
        url = server.url
        posted = time.monotonic()
        run = httpx.post(f"{url}/api/v1/runs", json={"config": tiny_config(demo_dataset, name="e2e")}).json()
        first_epoch = None
        with httpx.stream(
            "GET", f"{url}/api/v1/runs/{run['id']}/events", timeout=httpx.Timeout(10, read=300)
        ) as stream:
            events = []
            for event in iter_events(stream.iter_lines()):
                events.append(event)
                if event[0] == "epoch" and first_epoch is None:
                    first_epoch = time.monotonic() - posted
                if event[0] == "end":
                    break
        assert [data["epoch"] for kind, _, data in events if kind == "epoch"] == [1, 2, 3]
        final = events[-1][2]
        assert final["status"] == "succeeded", final["error"]
        assert final["test_top1"] is not None and final["checkpoint_epoch"] in (1, 2, 3) and final["epoch"] == 3
        metrics = httpx.get(f"{url}/api/v1/runs/{run['id']}/metrics").json()
        assert [row["epoch"] for row in metrics["data"]] == [1, 2, 3]
        assert all(row["train_loss"] > 0 and row["seconds"] > 0 for row in metrics["data"])
        assert httpx.get(f"{url}/api/v1/runs/{run['id']}/steps").json()["count"] >= 0
        whole = time.monotonic() - posted
        assert first_epoch is not None
        assert first_epoch < whole  # streamed as they came, not at the end
        record_property("post_to_first_epoch_s", round(first_epoch, 2))
        database = Database(settings.database_url)
        with database.session() as session:
            stored = session.get_one(Run, run["id"])
            first_row = session.scalars(
                select(EpochMetric).where(EpochMetric.run_id == run["id"]).order_by(EpochMetric.epoch)
            ).first()
            assert first_row is not None and stored.started_at is not None
            # What trained it, for a report's provenance: the trainer's own versions, as the worker stored them.
            assert (stored.software or "").startswith(f"tricklab {version('tricklab')}, torch {torch.__version__}")
            claim_delay = (stored.started_at - stored.created_at).total_seconds()
            to_row = (first_row.created_at - stored.created_at).total_seconds()
        database.dispose()
        print(
            f"POST to first epoch row {to_row:.1f} s (claimed after {claim_delay:.1f} s; epoch 1 trained in "
            f"{first_row.seconds:.1f} s), to the first epoch event {first_epoch:.1f} s; whole run {whole:.1f} s"
        )

        workers = children(server.process.pid)
        assert workers
        assert server.stop() == 0
        wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10, what="the workers to stop")


def test_a_worker_killed_mid_run_is_resumed_by_the_next_not_restarted(
    sqlite_url, make_settings, make_database, start_worker, demo_dataset
):
    settings = make_settings(sqlite_url, data_roots=[demo_dataset], trainer_command=default_trainer_command())
    db = make_database(settings)
    with db.session(write=True) as session:
        # resnet18's epochs take long enough that the kill lands between the first and the last.
        config = tiny_config(demo_dataset, model={"arch": "resnet18", "pretrained": False})
        run_id = run_service.create_run(session=session, settings=settings, config=config).id

    def rows():
        with db.session() as session:
            return [
                (row.epoch, row.attempt, row.train_loss, row.valid_loss, row.valid_top1, row.lr, row.seconds)
                for row in session.scalars(
                    select(EpochMetric).where(EpochMetric.run_id == run_id).order_by(EpochMetric.epoch)
                )
            ]

    first = start_worker(settings)
    epoch_one = wait_for(lambda: rows()[:1], timeout=240, what="epoch 1's row", interval=0.02)[0]
    trainers = children(first.pid)
    first.send_signal(signal.SIGKILL)
    first.wait()
    wait_for(lambda: not any(alive(pid) for pid in trainers), timeout=5, what="the trainer to die with its worker")
    with db.session() as session:
        assert session.get(Run, run_id).status == RunStatus.running  # until its heartbeat goes stale
    if len(rows()) == 3:
        pytest.fail("the run finished before the worker was killed; the test needs slower epochs")

    start_worker(settings)
    wait_for(
        lambda: _status(db, run_id) in (RunStatus.succeeded, RunStatus.failed),
        timeout=240,
        what="the run to finish under the second worker",
    )
    with db.session() as session:
        run = session.get(Run, run_id)
    assert run.status == RunStatus.succeeded, run.error
    assert (run.attempt, run.failure_kind, run.infrastructure_failures) == (2, FailureKind.infrastructure, 1)
    assert run.start_epoch >= 1  # resumed from a checkpoint, not from scratch
    stored = rows()
    assert [row[0] for row in stored] == [1, 2, 3]  # each epoch exactly once
    assert stored[0] == epoch_one  # epoch 1 untouched, still written by attempt 1
    assert stored[-1][1] == 2


def _status(db, run_id):
    with db.session() as session:
        return session.get(Run, run_id).status


def test_a_dataset_with_unreadable_images_fails_the_run_with_one_line_naming_them(
    make_settings, sqlite_url, demo_dataset, tmp_path, live_server, start_worker
):
    broken = tmp_path / "broken"
    shutil.copytree(demo_dataset / "CUB_200_2011", broken / "CUB_200_2011")
    images = sorted((broken / "CUB_200_2011" / "images").rglob("*.jpg"))
    images[0].write_bytes(images[0].read_bytes()[:200])  # truncated
    images[-1].write_bytes(b"")  # empty
    settings = make_settings(sqlite_url, data_roots=[broken], trainer_command=default_trainer_command())
    url = live_server(settings)
    run = httpx.post(f"{url}/api/v1/runs", json={"config": tiny_config(broken)}, timeout=30).json()
    # Queued first: a worker started with --once exits at once when it finds nothing to claim.
    start_worker(settings, "--once")
    final = wait_for(
        lambda: (
            (answer := httpx.get(f"{url}/api/v1/runs/{run['id']}", timeout=30).json())["status"] == "failed" and answer
        ),
        timeout=240,
        what="the run to fail",
    )
    first_line = final["error"].splitlines()[0]
    assert first_line.startswith("2 images under") and "cannot be read" in first_line, final["error"]
    for image in (images[0], images[-1]):
        assert image.relative_to(broken / "CUB_200_2011").as_posix() in first_line
    assert "Traceback" not in final["error"]


def test_a_sigkill_tricklab_did_not_send_is_reported_as_the_systems_with_the_memory_peak(
    make_settings, sqlite_url, demo_dataset, live_server, start_worker
):
    # The trainer exec'd by the worker, its child (tests/trainer/test_fork_server.py kills a forked one).
    settings = make_settings(
        sqlite_url, data_roots=[demo_dataset], trainer_command=default_trainer_command(), fork_server="off"
    )
    url = live_server(settings)

    def submit(name: str) -> int:
        # Enough epochs that the signal lands mid-run, each a fraction of a second.
        config = tiny_config(demo_dataset, name=name, epochs=40)
        return httpx.post(f"{url}/api/v1/runs", json={"config": config}, timeout=30).json()["id"]

    def run(run_id: int) -> dict:
        return httpx.get(f"{url}/api/v1/runs/{run_id}", timeout=30).json()

    def final(run_id: int) -> dict:
        return wait_for(
            lambda: (answer := run(run_id))["status"] in ("succeeded", "failed", "cancelled") and answer,
            timeout=120,
            what=f"run {run_id} to end",
        )

    killed = submit("killed")
    worker = start_worker(settings)
    wait_for(lambda: run(killed)["epoch"] >= 1, timeout=240, what="epoch 1's row", interval=0.02)
    (trainer,) = children(worker.pid)
    os.kill(trainer, signal.SIGKILL)  # as the kernel's out-of-memory killer does
    ended = final(killed)
    assert ended["status"] == "failed" and ended["epoch"] < 40, ended
    first_line = ended["error"].splitlines()[0]
    assert first_line.startswith("the system killed the trainer (SIGKILL, not sent by tricklab)"), first_line
    assert "most likely for lack of memory: its resident memory had peaked at " in first_line
    assert re.search(r"peaked at \d+(\.\d)? (MiB|GiB) by epoch \d+", first_line), first_line
    rows = httpx.get(f"{url}/api/v1/runs/{killed}/metrics", timeout=30).json()["data"]
    assert all(row["peak_rss_bytes"] > 50 * 2**20 for row in rows)  # torch alone takes more

    cancelled = submit("cancelled")
    wait_for(lambda: run(cancelled)["epoch"] >= 1, timeout=240, what="epoch 1's row", interval=0.02)
    assert httpx.post(f"{url}/api/v1/runs/{cancelled}/cancel", timeout=30).status_code == 200
    ended = final(cancelled)
    assert ended["status"] == "cancelled" and "system" not in (ended["error"] or ""), ended
