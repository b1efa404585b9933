"""Workers that own several devices: ``--procs 2`` (gloo on CPU) with the real trainer under torchrun,
through the real queue; and what ``--gpus`` and ``--device cuda:N`` show the trainer (fake trainer)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import select
from testlib.processes import REPO

from backend.models import EpochMetric, FailureKind, Run, RunStatus
from backend.placement import PlacementError, hold_gpus, placement
from backend.services import queue as jobs
from backend.services import runs as run_service
from backend.settings import default_trainer_command
from trainer.data.demo import write_demo_dataset
from tricklab.local import wait_for

# Seconds per epoch on two gloo processes: 2 steps of 16 images at 32 px.
TINY: dict[str, Any] = {
    "model": {"arch": "resnet18", "pretrained": False},
    "batch_size": 16,
    "data": {"image_size": 32, "num_workers": 0},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    parent = tmp_path_factory.mktemp("worker-dataset")
    write_demo_dataset(parent, classes=4, per_class=12, size=40, seed=0)
    return parent


def submit(db, settings, dataset: Path, priority: int = 0, **config) -> int:
    values = {**TINY, "data": {**TINY["data"], "root": str(dataset)}, **config}
    with db.session(write=True) as session:
        return run_service.create_run(session=session, settings=settings, config=values, priority=priority).id


def get(db, run_id) -> Run:
    with db.session() as session:
        return session.get_one(Run, run_id)


def epochs(db, run_id) -> list[tuple[int, int]]:
    """(epoch, attempt) of each stored row."""
    with db.session() as session:
        rows = session.scalars(select(EpochMetric).where(EpochMetric.run_id == run_id).order_by(EpochMetric.epoch))
        return [(row.epoch, row.attempt) for row in rows]


def _processes() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> set[int]:
    parents = _processes()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    return pids & _processes().keys()


def ranks(worker_pid: int) -> dict[int, int]:
    """rank -> pid of the trainer processes under a worker (torchrun sets RANK in their environment)."""
    found = {}
    for pid in descendants(worker_pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        for entry in environ:
            if entry.startswith(b"RANK="):
                found[int(entry[5:])] = pid
    return found


def training(db, run_id: int) -> bool:
    """The trainer's start event is stored: every rank has joined and the epochs begin."""
    return get(db, run_id).world_size is not None


def test_two_process_worker_trains_a_queued_run_and_a_new_worker_resumes_it_after_a_sigkill(
    sqlite_url, make_settings, make_database, start_worker, dataset
):
    settings = make_settings(sqlite_url, data_roots=[dataset], trainer_command=default_trainer_command())
    db = make_database(settings)
    run_id = submit(db, settings, dataset, name="pair", epochs=2)

    first = start_worker(settings, "--procs", "2")
    wait_for(lambda: epochs(db, run_id), timeout=300, what="epoch 1's row", interval=0.05)
    trainers = descendants(first.pid)
    assert sorted(ranks(first.pid)) == [0, 1]
    run = get(db, run_id)
    assert (run.world_size, run.devices, run.worker) == (2, "2 × CPU (gloo)", run.worker)
    assert run.worker is not None and run.worker.endswith(":cpu×2")
    first.send_signal(signal.SIGKILL)
    first.wait()
    # torchrun dies with the worker (PR_SET_PDEATHSIG), and its ranks with torchrun.
    wait_for(lambda: not alive(trainers), timeout=10, what="torchrun and its ranks to die with the worker")
    if len(epochs(db, run_id)) == 2:
        pytest.fail("the run finished before the worker was killed; the test needs slower epochs")

    start_worker(settings, "--procs", "2")
    wait_for(
        lambda: get(db, run_id).status in (RunStatus.succeeded, RunStatus.failed),
        timeout=300,
        what="the run to finish under the second worker",
    )
    run = get(db, run_id)
    assert run.status == RunStatus.succeeded, run.error
    assert (run.attempt, run.failure_kind, run.infrastructure_failures) == (2, FailureKind.infrastructure, 1)
    assert run.start_epoch >= 1  # resumed from the checkpoint rank 0 wrote, on both ranks
    stored = epochs(db, run_id)
    assert [epoch for epoch, _ in stored] == [1, 2]  # each epoch once
    assert stored[0][1] == 1 and stored[-1][1] == 2
    assert run.test_top1 is not None and run.checkpoint_epoch in (1, 2)
    with db.session() as session:
        public = run_service.public_run(session=session, settings=settings, run=session.get_one(Run, run_id))
    assert (public.world_size, public.devices) == (2, "2 × CPU (gloo)")
    folder = settings.run_dir(run_id)
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 2  # rank 0 alone wrote
    assert sorted((folder / "logs" / "attempt-2").glob("*/attempt_0/*/stderr.log"))  # one per rank


def test_a_killed_rank_fails_its_attempt_naming_it_and_a_cancel_stops_every_rank(
    sqlite_url, make_settings, make_database, start_worker, dataset
):
    settings = make_settings(sqlite_url, data_roots=[dataset], trainer_command=default_trainer_command())
    db = make_database(settings)
    killed = submit(db, settings, dataset, name="killed", epochs=50, priority=1)
    cancelled = submit(db, settings, dataset, name="cancelled", epochs=50)
    worker = start_worker(settings, "--procs", "2")

    wait_for(lambda: training(db, killed), timeout=300, what="both ranks of the first run to start training")
    trainers = descendants(worker.pid)
    os.kill(ranks(worker.pid)[1], signal.SIGKILL)
    wait_for(lambda: get(db, killed).status == RunStatus.failed, timeout=60, what="the attempt to fail")
    run = get(db, killed)
    assert run.failure_kind == FailureKind.training
    assert run.error is not None and run.error.startswith("rank 1 was killed by SIGKILL"), run.error
    wait_for(lambda: not alive(trainers), timeout=10, what="torchrun and rank 0 to stop")

    # The same worker goes on to the next run, and a cancel stops torchrun and both its ranks.
    wait_for(lambda: training(db, cancelled), timeout=300, what="both ranks of the second run to start training")
    trainers = descendants(worker.pid)
    assert len(ranks(worker.pid)) == 2
    with db.session(write=True) as session:
        run_service.cancel_run(session=session, run_id=cancelled)
    wait_for(lambda: get(db, cancelled).status == RunStatus.cancelled, timeout=15, what="the run to be cancelled")
    wait_for(lambda: not alive(trainers), timeout=10, what="torchrun and both ranks to stop")
    assert worker.poll() is None  # the worker itself carries on


def test_a_batch_that_does_not_divide_over_the_workers_processes_fails_the_run_naming_both(
    sqlite_url, make_settings, make_database, start_worker, dataset
):
    settings = make_settings(sqlite_url, data_roots=[dataset])
    db = make_database(settings)
    run_id = submit(db, settings, dataset, name="odd")
    assert start_worker(settings, "--procs", "3", "--once").wait(timeout=60) == 0
    run = get(db, run_id)
    assert run.status == RunStatus.failed
    assert run.error is not None and "batch_size: 16 does not divide over 3 processes" in run.error
    assert not (settings.run_dir(run_id) / "invocations").exists()  # no trainer was started


# --- placement: --gpus, --device, --procs ------------------------------------------------------


def test_gpus_are_counted_among_the_visible_ones_in_nvidia_smis_order():
    four = placement(gpus=[0, 1, 2, 3], environ={})
    assert (four.processes, four.runtime_device, four.label) == (4, "cuda", "cuda:0,1,2,3")
    assert four.env == {"CUDA_VISIBLE_DEVICES": "0,1,2,3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    inherited = placement(gpus=[1], environ={"CUDA_VISIBLE_DEVICES": "4,5", "CUDA_DEVICE_ORDER": "FASTEST_FIRST"})
    assert inherited.env == {"CUDA_VISIBLE_DEVICES": "5", "CUDA_DEVICE_ORDER": "FASTEST_FIRST"}
    assert not inherited.distributed
    assert placement(device="cuda:1", environ={"CUDA_VISIBLE_DEVICES": "4,5"}).env["CUDA_VISIBLE_DEVICES"] == "5"
    procs = placement(procs=2, environ={})
    assert (procs.processes, procs.runtime_device, procs.env) == (2, "cpu", {"CUDA_VISIBLE_DEVICES": ""})
    assert placement(environ={}).runtime_device is None


@pytest.mark.parametrize(
    ("gpus", "environ", "message"),
    [
        ([2], {"CUDA_VISIBLE_DEVICES": "4,5"}, "sees 2 GPU(s) (CUDA_VISIBLE_DEVICES='4,5'), so there is no GPU 2"),
        ([0], {"CUDA_VISIBLE_DEVICES": ""}, "sees 0 GPU(s)"),
        ([0, 0], {}, "a GPU appears twice"),
    ],
)
def test_gpus_a_worker_cannot_own_are_refused(gpus, environ, message):
    with pytest.raises(PlacementError, match=message.replace("(", r"\(").replace(")", r"\)")):
        placement(gpus=gpus, environ=environ)


def test_two_workers_on_one_host_cannot_own_one_gpu(tmp_path):
    held = hold_gpus(placement(gpus=[0, 1], environ={}), owner="host:1:cuda:0,1", lock_dir=tmp_path)
    try:
        with pytest.raises(PlacementError, match="GPU 1 is owned by worker host:1:cuda:0,1"):
            hold_gpus(placement(gpus=[1, 2], environ={}), owner="host:2:cuda:1,2", lock_dir=tmp_path)
        assert hold_gpus(placement(gpus=[2], environ={}), owner="host:3:cuda:2", lock_dir=tmp_path)
    finally:
        for handle in held:
            handle.close()
    assert hold_gpus(placement(gpus=[1], environ={}), owner="host:4:cuda:1", lock_dir=tmp_path)


def test_a_gpu_worker_shows_its_trainer_only_its_gpu(
    sqlite_url, make_settings, make_database, start_worker, dataset, tmp_path, monkeypatch
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the GPU lock files
    settings = make_settings(sqlite_url, data_roots=[dataset])
    db = make_database(settings)
    run_id = submit(db, settings, dataset, name="one-gpu", epochs=1)
    holder = start_worker(settings, "--gpus", "1")
    wait_for(lambda: get(db, run_id).status == RunStatus.succeeded, timeout=60, what="the run to succeed")
    folder = settings.run_dir(run_id)
    assert json.loads((folder / "child.env").read_text()) == {"CUDA_VISIBLE_DEVICES": "5"}
    assert json.loads((folder / "config.json").read_text())["runtime"]["device"] == "cuda"

    second = subprocess.run(
        [sys.executable, "-m", "backend", "worker", "--gpus", "0,1", "--once"],
        cwd=REPO,
        env={**settings.environ(), "CUDA_VISIBLE_DEVICES": "4,5", "TMPDIR": str(tmp_path), "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode != 0
    assert f"GPU 5 is owned by worker {get(db, run_id).worker}" in second.stderr
    assert holder.poll() is None


TOO_OLD = "The NVIDIA driver on your system is too old (found version 11040)"


@pytest.mark.parametrize(
    ("args", "trainer", "environ", "reason"),
    [
        (["--gpus", "0"], "fake", {"FAKE_CUDA_PROBLEM": TOO_OLD}, TOO_OLD),
        (["--device", "cuda:0"], "fake", {"FAKE_CUDA_PROBLEM": TOO_OLD}, TOO_OLD),
        pytest.param(
            ["--gpus", "0"],
            "real",
            {},
            "",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="shows a machine without CUDA"),
        ),
    ],
)
def test_a_gpu_worker_whose_trainer_cannot_use_cuda_stops_with_the_reason_and_claims_nothing(
    sqlite_url, make_settings, make_database, dataset, tmp_path, args, trainer, environ, reason
):
    command = default_trainer_command() if trainer == "real" else None
    settings = make_settings(sqlite_url, data_roots=[dataset], **({"trainer_command": command} if command else {}))
    db = make_database(settings)
    run_id = submit(db, settings, dataset, name="waits")
    done = subprocess.run(
        [sys.executable, "-m", "backend", "worker", *args, "--once"],
        cwd=REPO,
        env={**os.environ, **settings.environ(), "TMPDIR": str(tmp_path), **environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # the exit code is the answer
    )
    assert done.returncode != 0
    said = done.stderr.strip().splitlines()[-1]
    assert said.startswith("tricklab worker: this worker trains on cuda:0, but the trainer cannot use it: ")
    assert f"CUDA cannot be used: {reason}" in said and "Traceback" not in done.stderr
    run = get(db, run_id)
    assert (run.status, run.attempt) == (RunStatus.queued, 0)


@pytest.mark.parametrize(
    "args", [["--gpus", "0", "--procs", "2"], ["--gpus", "0,x"], ["--procs", "0"], ["--device", "cpu", "--gpus", "0"]]
)
def test_conflicting_or_bad_device_arguments_are_refused(args):
    from backend.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["worker", *args])
    assert exit_info.value.code == 2


def test_the_start_event_stores_the_world_on_the_run(database_url, make_settings, make_database, data_root):
    settings = make_settings(database_url)
    db = make_database(settings)
    with db.session(write=True) as session:
        run_id = run_service.create_run(
            session=session, settings=settings, config={"data": {"root": str(data_root)}}
        ).id
    with db.session(write=True) as session:
        claim = jobs.claim_run(session=session, worker="w", stale_after_seconds=60)
    assert claim is not None
    for world_size, devices, stored in [
        (4, "4 × H200", (4, "4 × H200")),
        (0, "", (None, None)),
        ("4", ["H200"], (None, None)),
        (True, "x" * 300, (None, "x" * 200)),
    ]:
        with db.session(write=True) as session:
            done = jobs.record_start(
                session=session,
                run_id=run_id,
                attempt=claim.attempt,
                start_epoch=0,
                world_size=world_size,
                devices=devices,
            )
        assert done is True
        run = get(db, run_id)
        assert (run.world_size, run.devices) == stored


def test_the_start_event_stores_why_the_run_trains_on_the_cpu(database_url, make_settings, make_database, data_root):
    settings = make_settings(database_url)
    db = make_database(settings)
    with db.session(write=True) as session:
        run_id = run_service.create_run(
            session=session, settings=settings, config={"data": {"root": str(data_root)}}
        ).id
    with db.session(write=True) as session:
        claim = jobs.claim_run(session=session, worker="w", stale_after_seconds=60)
    assert claim is not None
    note = "runtime.device is auto and CUDA cannot be used: Found no NVIDIA driver on your system"
    for fallback, stored in [(note, note), (None, None), ("", None), (7, None), ("x" * 3000, "x" * 2000)]:
        with db.session(write=True) as session:
            assert jobs.record_start(
                session=session, run_id=run_id, attempt=claim.attempt, start_epoch=0, fallback=fallback
            )
        assert get(db, run_id).device_fallback == stored
        with db.session() as session:
            public = run_service.public_run(session=session, settings=settings, run=session.get_one(Run, run_id))
        assert public.device_fallback == stored
