"""Faults of the machine, real ones: they hand the run back to the queue (not failed, no training attempt
charged) and pause the worker, which says why and resumes by itself once the fault clears.

A runs folder on a real full disk (a size-limited tmpfs, grown or filled as the test goes): the worker
pauses before claiming a run it has no room for, and a checkpoint that cannot be written requeues the run.
A data root removed mid-run, then put back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from testlib.models import TINY_ARCH

from backend.settings import default_trainer_command
from tricklab.local import wait_for


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, Callable[[str], None]]]:
    """A tmpfs of 8 MB as the runs folder, and ``resize("64m")``; unmounted after the test."""
    mount = tmp_path / "runs"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_tmpfs = ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)]
    mounted = subprocess.run(mount_tmpfs, check=False, capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)

    try:
        yield mount, resize
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Take every free byte of the disk with one file; returns it."""
    filler = folder / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        # A running trainer may take some of the free bytes between the measure and the claim: claim again.
        for _ in range(20):
            free = shutil.disk_usage(folder).free
            if free == 0:
                break
            with contextlib.suppress(OSError):
                os.posix_fallocate(descriptor, os.fstat(descriptor).st_size, free)
    finally:
        os.close(descriptor)
    assert shutil.disk_usage(folder).free == 0
    return filler


def test_a_full_runs_folder_pauses_the_worker_and_requeues_the_run_until_space_returns(
    small_disk, make_settings, sqlite_url, demo_dataset, live_server, start_worker
):
    runs_dir, resize = small_disk
    settings = make_settings(
        sqlite_url, runs_dir=runs_dir, data_roots=[demo_dataset], trainer_command=default_trainer_command()
    )
    url = live_server(settings)
    epochs = 12
    config = {
        "model": {"arch": TINY_ARCH, "pretrained": False},
        "epochs": epochs,
        "batch_size": 16,
        "data": {"image_size": 32, "num_workers": 0, "root": str(demo_dataset)},
    }
    run_id = httpx.post(f"{url}/api/v1/runs", json={"config": config}, timeout=30).json()["id"]

    def run() -> dict:
        return httpx.get(f"{url}/api/v1/runs/{run_id}", timeout=30).json()

    def paused() -> str | None:
        workers = httpx.get(f"{url}/api/v1/workers", timeout=30).json()["data"]
        return workers[0]["paused"] if workers else None

    start_worker(settings)
    # Too small from the start: the worker claims nothing and says why.
    reason = wait_for(paused, timeout=60, what="the worker to pause")
    assert reason.startswith(f"runs folder {runs_dir} has ") and f"a run of {TINY_ARCH} needs about " in reason
    assert "`tricklab gc` removes the checkpoints of old finished runs" in reason
    assert (run()["status"], run()["attempt"]) == ("queued", 0)
    for page in ("/", f"/runs/{run_id}"):
        assert f"is paused: runs folder {runs_dir} has " in httpx.get(f"{url}{page}", timeout=30).text

    resize("64m")
    wait_for(lambda: run()["epoch"] >= 1, timeout=120, what="epoch 1 once the disk grew", interval=0.02)
    assert paused() is None
    assert "is paused" not in httpx.get(f"{url}/", timeout=30).text
    filler = _fill(runs_dir)  # full mid-run: the next checkpoint cannot be written

    requeued = wait_for(
        lambda: (answer := run())["status"] != "running" and answer, timeout=120, what="the run to stop"
    )
    assert requeued["status"] == "queued", requeued
    assert requeued["training_failures"] == 0 and requeued["infrastructure_failures"] == 1
    assert requeued["failure_kind"] == "infrastructure"
    assert requeued["error"].startswith(f"no space left on the device of the runs folder {runs_dir} ("), requeued
    assert "`tricklab gc` removes the checkpoints" in requeued["error"]
    assert not list(runs_dir.rglob("*.tmp-*"))  # the half-written checkpoint is gone
    reason = wait_for(paused, timeout=30, what="the worker to pause again")
    assert reason.startswith(f"runs folder {runs_dir} has ")

    filler.unlink()
    final = wait_for(
        lambda: (answer := run())["status"] in ("succeeded", "failed", "cancelled") and answer,
        timeout=240,
        what="the run to finish once space returned",
    )
    assert final["status"] == "succeeded", final["error"]
    assert final["start_epoch"] >= 1  # resumed from its last good checkpoint
    metrics = httpx.get(f"{url}/api/v1/runs/{run_id}/metrics", timeout=30).json()["data"]
    assert [row["epoch"] for row in metrics] == list(range(1, epochs + 1))
    assert paused() is None


def test_a_data_root_removed_mid_run_requeues_the_run_until_it_is_back(
    make_settings, sqlite_url, demo_dataset, tmp_path, live_server, start_worker
):
    share = tmp_path / "share"
    shutil.copytree(demo_dataset, share)
    settings = make_settings(sqlite_url, data_roots=[share], trainer_command=default_trainer_command())
    url = live_server(settings)
    epochs = 12
    config = {
        "model": {"arch": TINY_ARCH, "pretrained": False},
        "epochs": epochs,
        "batch_size": 16,
        # The report's pipeline reads each image from the root at every epoch: a vanished root shows at once.
        "data": {"image_size": 32, "num_workers": 0, "root": str(share), "pipeline": "reference"},
    }
    run_id = httpx.post(f"{url}/api/v1/runs", json={"config": config}, timeout=30).json()["id"]

    def run() -> dict:
        return httpx.get(f"{url}/api/v1/runs/{run_id}", timeout=30).json()

    def paused() -> str | None:
        workers = httpx.get(f"{url}/api/v1/workers", timeout=30).json()["data"]
        return workers[0]["paused"] if workers else None

    start_worker(settings)
    wait_for(lambda: run()["epoch"] >= 1, timeout=120, what="epoch 1", interval=0.02)
    share.rename(tmp_path / "unmounted")
    requeued = wait_for(
        lambda: (answer := run())["status"] != "running" and answer, timeout=120, what="the run to stop"
    )
    assert requeued["status"] == "queued", requeued
    assert (requeued["training_failures"], requeued["failure_kind"]) == (0, "infrastructure")
    assert requeued["error"].startswith(f"the data root {share} cannot be read any more"), requeued["error"]
    reason = wait_for(paused, timeout=30, what="the worker to pause")
    assert reason == f"the data root {share} cannot be read (unmounted or removed?)"

    (tmp_path / "unmounted").rename(share)
    final = wait_for(
        lambda: (answer := run())["status"] in ("succeeded", "failed", "cancelled") and answer,
        timeout=240,
        what="the run to finish once the data root is back",
    )
    assert final["status"] == "succeeded", final["error"]
    metrics = httpx.get(f"{url}/api/v1/runs/{run_id}/metrics", timeout=30).json()["data"]
    assert [row["epoch"] for row in metrics] == list(range(1, epochs + 1))
    assert paused() is None
