"""The product steps of ``bench.gpu_check``: `tricklab serve` and its workers on SQLite, driven through the
Python client as a user's script drives them (a run whose worker is killed and resumed, a run under
torchrun, the seed study)."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from bench.gpu_sizes import Check, Sizes, run_config
from trainer.models.build import build_model
from trainer.protocol import launch_command
from tricklab import Client
from tricklab.local import serving, wait_for
from tricklab.models import EpochMetrics, Run

REPO = Path(__file__).resolve().parents[1]
# Fields every epoch row has; anything else a row carries (e.g. where its time went) is reported too.
BASE_ROW_FIELDS = set(EpochMetrics.model_fields) | {"train_task_loss", "train_kd_loss"}


class Product:
    """The server's client, and workers started and killed at will."""

    def __init__(self, client: Client, *, env: dict[str, str], check: Check):
        self.client = client
        self.env = env
        self.check = check
        self.processes: list[subprocess.Popen] = []

    def worker(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.check.out / f"{name}.log").open("a")
        process = subprocess.Popen(
            [sys.executable, "-m", "backend", "worker", *args],
            cwd=REPO,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its trainer (and torchrun's ranks) share its group: one signal stops all
        )
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        """SIGTERM, and wait: the worker hands back what it holds, its GPU lock included."""
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)

    def rows(self, run_id: int) -> list[dict[str, Any]]:
        return [row.model_dump() for row in self.client.get_metrics([run_id])]

    def stop_workers(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def product(work: Path, *, data_root: Path, check: Check) -> Iterator[Product]:
    """`tricklab serve --no-worker` on SQLite in ``work``; its workers are stopped before it."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TRICKLAB_DATABASE_URL": f"sqlite:///{work / 'tricklab.db'}",
        "TRICKLAB_RUNS_DIR": str(work / "runs"),
        "TRICKLAB_DATA_ROOTS": json.dumps([str(data_root.parent)]),
        "TRICKLAB_HEARTBEAT_SECONDS": "1",
        "TRICKLAB_STALE_AFTER_SECONDS": "6",
        "TRICKLAB_POLL_SECONDS": "0.5",
        # Each worker starts its own fork server, as a user's do; one named by the caller (the test suite's)
        # was started with another PYTHONPATH and refuses them.
        "TRICKLAB_FORK_SERVER": "auto",
    }
    with (
        serving(cwd=REPO, env=env, log=check.out / "server.log", timeout=120) as server,
        Client(server.url, token="") as client,
    ):
        running = Product(client, env=env, check=check)
        try:
            yield running
        finally:
            running.stop_workers()


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL, as a machine that dies: the worker cannot hand its run back."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def epoch_figures(rows: list[dict[str, Any]], epochs: int) -> dict[str, Any]:
    """Per-epoch seconds and images/s of a run's rows, checking each epoch is stored once."""
    stored = [row["epoch"] for row in rows]
    figures: dict[str, Any] = {
        "epochs_stored": stored,
        "each_epoch_once": sorted(stored) == list(range(1, epochs + 1)),
        "epoch_s": [round(row["seconds"], 2) for row in rows],
        "images_per_s": [round(row["images_per_s"]) for row in rows],
    }
    extra = sorted({key for row in rows for key, value in row.items() if value is not None} - BASE_ROW_FIELDS)
    for key in extra:
        figures[key] = [row.get(key) for row in rows]
    return figures


def until_epoch(product: Product, run_id: int, epoch: int, *, timeout: float) -> Run:
    """The run once it has stored ``epoch`` (0: once it has finished); RuntimeError if it ends short of it."""

    def reached() -> Run | None:
        run = product.client.get_run(run_id)
        if run.status in ("failed", "cancelled"):
            raise RuntimeError(f"run {run_id} {run.status}: {run.error}")
        return run if (run.epoch >= epoch if epoch else run.status == "succeeded") else None

    return wait_for(
        reached,
        interval=0.5,
        timeout=timeout,
        what=f"run {run_id} to reach epoch {epoch}" if epoch else f"run {run_id}",
    )


def product_run(product: Product, sizes: Sizes, root: Path) -> dict[str, Any]:
    """The 10-epoch run through the REST API, its worker killed after epoch ``kill_after``."""
    # A saved random ImageNet-shaped state_dict: the loading path, without any download.
    weights = root.parent / f"{sizes.arch}-random.pt"  # inside the server's data roots
    torch.save(build_model(sizes.arch, 1000, pretrained=False).state_dict(), weights)
    config = run_config(
        sizes, root, epochs=sizes.run_epochs, **{"model.pretrained": True, "model.weights_path": str(weights)}
    )
    worker = product.worker("worker-1", "--device", sizes.device)
    try:
        posted = time.monotonic()
        run_id = product.client.create_run(config.model_dump(mode="json")).id
        until_epoch(product, run_id, 1, timeout=300)
        first_epoch_s = time.monotonic() - posted
        until_epoch(product, run_id, sizes.kill_after, timeout=300)
        _kill(worker)
        killed_at = product.client.get_run(run_id).epoch
        product.check.say(f"worker killed after epoch {killed_at}; a new one starts")
        worker = product.worker("worker-2", "--device", sizes.device)
        run = until_epoch(product, run_id, 0, timeout=600)
    finally:
        product.stop(worker)
    return {
        "run_id": run_id,
        "status": run.status,
        "attempts": run.attempt,
        "killed_after_epoch": killed_at,
        "resumed_after_epoch": run.start_epoch,
        "devices": run.devices,
        "device_fallback": run.device_fallback,
        "post_to_first_epoch_s": round(first_epoch_s, 1),
        "run_wall_s": round(time.monotonic() - posted, 1),
        "test_top1": run.test_top1,
        **epoch_figures(product.rows(run_id), sizes.run_epochs),
    }


def study(product: Product, sizes: Sizes, root: Path, *, budget: float) -> dict[str, Any]:
    """The seed preset study with ``study_epochs`` epochs a run, stopped at ``budget`` seconds."""
    overrides: dict[str, Any] = {
        "epochs": sizes.study_epochs,
        "data.root": str(root),
        "data.image_size": sizes.image_size,
        "data.num_workers": 0,
        "batch_size": sizes.batch_size,
        "model.pretrained": False,
    }
    if sizes.smoke:
        overrides |= {"model.arch": sizes.arch, "teacher.model.arch": sizes.teacher}
    client = product.client
    worker = product.worker("worker-study", "--device", sizes.device)
    started = time.monotonic()
    study_id = client.create_study("gpu-check seed study", preset="seed", overrides=overrides).id
    try:
        state, finished = client.wait_for_study(study_id, timeout=budget), True
    except TimeoutError:
        state, finished = client.cancel_study(study_id), False
    wall = time.monotonic() - started
    product.stop(worker)
    runs = [client.get_run(run_id) for run_id in state.run_ids]
    per_run = []
    for run in runs:
        if run.status != "succeeded":
            continue
        rows = product.rows(run.id)
        wall_s = (run.finished_at - run.started_at).total_seconds() if run.started_at and run.finished_at else None
        per_run.append(
            {
                "run_id": run.id,
                "wall_s": wall_s,
                "epoch_s": sum(row["seconds"] for row in rows),
                "once": len(rows) == len({row["epoch"] for row in rows}),
            }
        )
    figures: dict[str, Any] = {
        "runs": len(runs),
        "succeeded": len(per_run),
        "finished": finished,
        "wall_s": round(wall, 1),
        "every_epoch_once": all(run["once"] for run in per_run),
        "per_run": per_run,
    }
    if per_run:
        # A run of 10 epochs costs its fixed part (start, cache, evaluation, test) plus 10 of its epochs.
        projected = [r["wall_s"] + (10 / sizes.study_epochs - 1) * r["epoch_s"] for r in per_run if r["wall_s"]]
        figures["projected_10_epochs_min"] = (
            round(statistics.mean(projected) * len(runs) / 60, 1) if projected else None
        )
    return figures


def torchrun_run(product: Product, sizes: Sizes, root: Path) -> dict[str, Any]:
    """A short run through a worker whose trainer runs under torchrun, one process on the GPU."""
    command = launch_command([sys.executable, "-m", "trainer", "run"], nproc_per_node=1)
    worker = product.worker(
        "worker-torchrun",
        "--device",
        sizes.device,
        env={**product.env, "TRICKLAB_TRAINER_COMMAND": json.dumps(command)},
    )
    try:
        config = run_config(sizes, root, epochs=sizes.torchrun_epochs, name="gpu-check torchrun")
        run_id = product.client.create_run(config.model_dump(mode="json")).id
        run = until_epoch(product, run_id, 0, timeout=400)
    finally:
        product.stop(worker)
    return {
        "status": run.status,
        "trainer_command": command,
        "devices": run.devices,
        "world_size": run.world_size,
        **epoch_figures(product.rows(run_id), sizes.torchrun_epochs),
    }
