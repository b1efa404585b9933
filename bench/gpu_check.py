"""The GPU path end to end, in one call: what ``bench/gpu_check.sh`` runs once its wheels are installed.

Steps, each timed, each writing its figures into one JSON summary (``$OUT/gpu_check.json``):
1. data: a generated dataset of CUB-200-2011's size and shape (200 classes, 11,800 JPEGs of
   500x375 / 375x500 in CUB's layout), then its decoded caches;
2. throughput: ``bench.gpu_epoch`` (memory, fast path, reference pipeline, ResNet152 inference) and
   ``bench.tricks_overhead`` (mixup and KD on ResNet50 with a ResNet152 teacher);
3. the product: ``tricklab serve --no-worker`` and ``tricklab worker --device cuda:0`` on SQLite, a
   10-epoch ResNet50 run POSTed through the REST API with a saved random state_dict as its weights,
   its worker killed after epoch 2 and a new one started: the run must resume and store each epoch
   once; then the seed preset study with epochs cut, stopped at its time budget and projected;
4. risks: host syncs per step of a fresh and of a resumed epoch with mixup and KD under
   ``torch.cuda.set_sync_debug_mode("warn")``, peak GPU memory with teacher, student and cache;
   recompiles of a ``runtime.compile`` run under ``TORCH_LOGS=recompiles`` and its compile seconds;
   the driver and the device the trainer used;
5. a 1-GPU run through the worker under torchrun.

``--smoke`` runs every step at toy size on the CPU (resnet18, 32 px, a few dozen images; the compile
step needs minutes of CPU and is skipped), so the script cannot rot. A step that fails is recorded
with its error and the others still run; the exit code is 1 if any failed.

    python -m bench.gpu_check --out DIR [--smoke] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import torch

from bench.common import replicated_dataset
from bench.gpu_epoch import Take, source_batches
from bench.server import free_port
from trainer.config import KDConfig, OptimConfig, RunConfig, ScheduleConfig, TricksConfig
from trainer.data.cub import read_cub
from trainer.data.dataset import make_splits
from trainer.data.loaders import build_batch_sources
from trainer.loop.checkpoint import load_checkpoint, save_checkpoint
from trainer.loop.engine import train_one_epoch
from trainer.models.build import build_model
from trainer.models.param_groups import build_optimizer
from trainer.protocol import launch_command
from trainer.tricks.recipe import Tricks
from trainer.tricks.schedules import build_schedule

REPO = Path(__file__).resolve().parents[1]
# Fields every epoch row has; anything else a row carries (e.g. where its time went) is reported too.
BASE_ROW_FIELDS = {
    "run_id",
    "epoch",
    "attempt",
    "train_loss",
    "train_top1",
    "train_top5",
    "valid_loss",
    "valid_top1",
    "valid_top5",
    "lr",
    "seconds",
    "images_per_s",
    "train_task_loss",
    "train_kd_loss",
}


class Sizes:
    def __init__(self, smoke: bool):
        self.smoke = smoke
        self.arch, self.teacher = ("resnet18", "resnet18") if smoke else ("resnet50", "resnet152")
        self.image_size = 32 if smoke else 224
        self.batch_size = 4 if smoke else 64
        self.shape = (
            {"classes": 4, "per_class": 10, "distinct_per_class": 2}
            if smoke
            else {"classes": 200, "per_class": 59, "distinct_per_class": 3}
        )
        self.run_epochs, self.kill_after = (2, 1) if smoke else (10, 2)
        self.study_epochs = 1
        self.study_budget = 45 if smoke else None  # None: whatever the other steps leave
        self.torchrun_epochs = 1 if smoke else 2
        self.sync_steps = 2 if smoke else 20
        self.device = "cpu" if smoke else "cuda:0"


class Check:
    """The summary, the log and the clock of one check."""

    def __init__(self, out: Path, budget: float):
        self.out = out
        self.started = time.monotonic()
        self.budget = budget
        self.summary: dict[str, Any] = {"steps": {}, "failed": []}
        self.log = (out / "gpu_check.log").open("a", buffering=1)

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f} s] {text}"
        print(line, flush=True)
        self.log.write(line + "\n")

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def step(self, name: str, work: Callable[[], dict[str, Any]], *, needs: float = 0) -> dict[str, Any]:
        """Run ``work`` unless fewer than ``needs`` seconds are left; its figures and seconds go in the summary."""
        if self.left() < needs:
            self.say(f"{name}: skipped, {self.left():.0f} s left and it needs {needs:.0f}")
            self.summary["steps"][name] = {"skipped": f"out of time ({self.left():.0f} s left)"}
            return {}
        self.say(f"{name}: start")
        started = time.monotonic()
        try:
            figures = work()
        except Exception as exc:  # noqa: BLE001 - a check reports every step: one failure must not hide the rest
            figures = {"error": f"{type(exc).__name__}: {exc}"}
            self.summary["failed"].append(name)
        figures["seconds"] = round(time.monotonic() - started, 1)
        self.summary["steps"][name] = figures
        self.say(f"{name}: {json.dumps(figures)}")
        self.write()
        return figures

    def write(self) -> None:
        self.summary["wall_s"] = round(time.monotonic() - self.started, 1)
        (self.out / "gpu_check.json").write_text(json.dumps(self.summary, indent=2) + "\n")


def environment() -> dict[str, Any]:
    figures: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        figures["device"] = torch.cuda.get_device_name(0)
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version,name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,  # a machine without nvidia-smi still reports torch's view
        )
        figures["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    return figures


def build_data(sizes: Sizes) -> tuple[Path, dict[str, Any]]:
    started = time.monotonic()
    root = replicated_dataset(**sizes.shape)
    generated = time.monotonic() - started
    index = read_cub(root)
    config = run_config(sizes, root, epochs=1)
    started = time.monotonic()
    build_batch_sources(config, index=index, splits=make_splits(index, split="seed"), device=torch.device("cpu"))
    return root, {
        "images": len(index.samples),
        "generate_s": round(generated, 1),
        "cache_s": time.monotonic() - started,
    }


def run_config(sizes: Sizes, root: Path, *, epochs: int, **overrides: Any) -> RunConfig:
    values: dict[str, Any] = {
        "name": "gpu-check",
        "epochs": epochs,
        "batch_size": sizes.batch_size,
        "data": {"root": str(root), "image_size": sizes.image_size, "num_workers": 0},
        "model": {"arch": sizes.arch, "pretrained": False},
    }
    for key, value in overrides.items():
        *parents, last = key.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return RunConfig.from_dict(values)


def bench_module(module: str, *args: str, timeout: float) -> dict[str, Any]:
    """The RESULT line of ``python -m bench.MODULE ARGS`` as numbers."""
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,  # the exit code is reported
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.{module} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    last = done.stdout.strip().splitlines()[-1]
    return {key: float(value) for key, value in (pair.split("=", 1) for pair in last.removeprefix("RESULT ").split())}


class Product:
    """A tricklab server on SQLite, with workers started and killed at will."""

    def __init__(self, work: Path, *, data_root: Path, check: Check):
        self.check = check
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TRICKLAB_DATABASE_URL": f"sqlite:///{work / 'tricklab.db'}",
            "TRICKLAB_RUNS_DIR": str(work / "runs"),
            "TRICKLAB_DATA_ROOTS": json.dumps([str(data_root.parent)]),
            "TRICKLAB_HEARTBEAT_SECONDS": "1",
            "TRICKLAB_STALE_AFTER_SECONDS": "6",
            "TRICKLAB_POLL_SECONDS": "0.5",
        }
        self.logs = check.out
        self.processes: list[subprocess.Popen] = []
        self.server = self._start("server", "serve", "--no-worker", "--port", str(self.port))
        self.client = httpx.Client(base_url=self.url, timeout=30)
        _wait(self._healthy, timeout=120, what="the server to answer")

    def _start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("a")
        process = subprocess.Popen(
            [sys.executable, "-m", "backend", *args],
            cwd=REPO,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def worker(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return self._start(name, "worker", *args, env=env)

    def stop(self, process: subprocess.Popen) -> None:
        """SIGTERM, and wait: the worker hands back what it holds, its GPU lock included."""
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        if response.status_code >= 300:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def get(self, path: str) -> Any:
        response = self.client.get(path)
        response.raise_for_status()
        return response.json()

    def run(self, run_id: int) -> dict[str, Any]:
        return self.get(f"/api/v1/runs/{run_id}")

    def rows(self, run_id: int) -> list[dict[str, Any]]:
        return self.get(f"/api/v1/runs/{run_id}/metrics")["data"]

    def close(self) -> None:
        self.client.close()
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _wait(condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


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


def until_epoch(product: Product, run_id: int, epoch: int, *, timeout: float) -> dict[str, Any]:
    """The run once it has stored ``epoch`` (0: once it has finished); RuntimeError if it ends short of it."""

    def reached() -> dict[str, Any] | None:
        run = product.run(run_id)
        if run["status"] in ("failed", "cancelled"):
            raise RuntimeError(f"run {run_id} {run['status']}: {run['error']}")
        return run if (run["epoch"] >= epoch if epoch else run["status"] == "succeeded") else None

    return _wait(reached, timeout=timeout, what=f"run {run_id} to reach epoch {epoch}" if epoch else f"run {run_id}")


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
        run_id = product.post("/api/v1/runs", {"config": config.model_dump(mode="json")})["id"]
        until_epoch(product, run_id, 1, timeout=300)
        first_epoch_s = time.monotonic() - posted
        until_epoch(product, run_id, sizes.kill_after, timeout=300)
        _kill(worker)
        killed_at = product.run(run_id)["epoch"]
        product.check.say(f"worker killed after epoch {killed_at}; a new one starts")
        worker = product.worker("worker-2", "--device", sizes.device)
        run = until_epoch(product, run_id, 0, timeout=600)
    finally:
        product.stop(worker)
    return {
        "run_id": run_id,
        "status": run["status"],
        "attempts": run["attempt"],
        "killed_after_epoch": killed_at,
        "resumed_after_epoch": run["start_epoch"],
        "devices": run["devices"],
        "device_fallback": run["device_fallback"],
        "post_to_first_epoch_s": round(first_epoch_s, 1),
        "run_wall_s": round(time.monotonic() - posted, 1),
        "test_top1": run["test_top1"],
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
    worker = product.worker("worker-study", "--device", sizes.device)
    started = time.monotonic()
    created = product.post(
        "/api/v1/studies", {"name": "gpu-check seed study", "preset": "seed", "overrides": overrides}
    )
    study_id = created["id"]
    deadline = started + budget
    while time.monotonic() < deadline and not product.get(f"/api/v1/studies/{study_id}")["finished"]:
        time.sleep(1)
    wall = time.monotonic() - started
    state = product.get(f"/api/v1/studies/{study_id}")
    if not state["finished"]:
        product.post(f"/api/v1/studies/{study_id}/cancel", {})
    product.stop(worker)
    run_ids = sorted({entry["run_id"] for group in state["groups"] for entry in group["runs"]})
    runs = [product.run(run_id) for run_id in run_ids]
    done = [run for run in runs if run["status"] == "succeeded"]
    per_run = []
    for run in done:
        rows = product.rows(run["id"])
        wall_s = (_time(run["finished_at"]) - _time(run["started_at"])) if run["started_at"] else None
        epochs = sum(row["seconds"] for row in rows)
        per_run.append(
            {
                "run_id": run["id"],
                "wall_s": wall_s,
                "epoch_s": epochs,
                "once": len(rows) == len({row["epoch"] for row in rows}),
            }
        )
    figures: dict[str, Any] = {
        "runs": len(runs),
        "succeeded": len(done),
        "finished": state["finished"],
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


def _time(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def sync_and_memory(sizes: Sizes, root: Path, work: Path) -> dict[str, Any]:
    """Host syncs per step of a fresh and of a resumed epoch with mixup and KD; peak GPU memory."""
    device = torch.device(sizes.device)
    on_cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = on_cuda
    index = read_cub(root)
    splits = make_splits(index, split="seed")
    config = run_config(sizes, root, epochs=1, **{"tricks.mixup_alpha": 0.2})
    batches = source_batches(config, index=index, splits=splits, device=device)
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    teacher = build_model(sizes.teacher, len(index.classes), pretrained=False).to(device).eval()
    tricks_config = TricksConfig(mixup_alpha=0.2, kd=KDConfig(teacher=str(work)))
    memory_format = torch.channels_last if on_cuda else torch.contiguous_format

    def student() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        model = build_model(sizes.arch, len(index.classes), pretrained=False).to(device).to(memory_format=memory_format)
        return model, build_optimizer(model, OptimConfig())

    def steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, count: int, *, counted: bool) -> int:
        tricks = Tricks(tricks_config, seed=0, teacher=teacher.to(memory_format=memory_format))
        tricks.set_epoch(1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if on_cuda and counted:
                torch.cuda.set_sync_debug_mode("warn")
            try:
                train_one_epoch(
                    model=model,
                    loader=Take(batches, count),
                    optimizer=optimizer,
                    schedule=build_schedule(ScheduleConfig(), epochs=1, steps_per_epoch=count),
                    tricks=tricks,
                    start_step=0,
                    autocast_dtype=torch.bfloat16 if on_cuda else None,
                    channels_last=on_cuda,
                )
            finally:
                if on_cuda:
                    torch.cuda.set_sync_debug_mode(0)
        return sum("synchroniz" in str(warning.message) for warning in caught)

    model, optimizer = student()
    steps(model, optimizer, 2, counted=False)  # warm-up: cuDNN's search and the allocator sync
    fresh = steps(model, optimizer, sizes.sync_steps, counted=True)
    checkpoint = work / "sync-last.pt"
    save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict()})
    model, optimizer = student()
    state = load_checkpoint(checkpoint)  # as trainer.loop.run.resume reads it: onto the CPU
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    step_devices = sorted({str(s["step"].device) for s in optimizer.state.values() if "step" in s})
    resumed = steps(model, optimizer, sizes.sync_steps, counted=True)
    figures: dict[str, Any] = {
        "steps": sizes.sync_steps,
        "syncs_per_step_fresh": fresh / sizes.sync_steps,
        "syncs_per_step_resumed": resumed / sizes.sync_steps,
        "adam_step_devices_after_resume": step_devices,
        "counted": on_cuda,
    }
    if on_cuda:
        figures["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return figures


def compile_run(sizes: Sizes, root: Path, work: Path) -> dict[str, Any]:
    """A 2-epoch runtime.compile run through the trainer CLI: recompiles and compile seconds."""
    run_dir = work / "compile-run"
    run_dir.mkdir()
    run_config(sizes, root, epochs=2, **{"runtime.compile": True, "runtime.device": sizes.device}).save(
        run_dir / "config.json"
    )
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "run", str(run_dir)],
        cwd=REPO,
        env={**os.environ, "TORCH_LOGS": "recompiles"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,  # the exit code is reported
    )
    (work.parent / "out-compile-run.stderr").write_text(done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"the compiled run exited {done.returncode}: {done.stderr.strip()[-800:]}")
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    epochs = [event for event in events if event.get("type") == "epoch"]
    seconds = [event["seconds"] for event in epochs]
    return {
        "recompiles": len(re.findall(r"Recompiling function", done.stderr)),
        "epoch_s": seconds,
        "images_per_s": [round(event["images_per_s"]) for event in epochs],
        "compile_s_approx": round(seconds[0] - seconds[1], 1) if len(seconds) == 2 else None,
    }


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
        run_id = product.post("/api/v1/runs", {"config": config.model_dump(mode="json")})["id"]
        run = until_epoch(product, run_id, 0, timeout=400)
    finally:
        product.stop(worker)
    return {
        "status": run["status"],
        "trainer_command": command,
        "devices": run["devices"],
        "world_size": run["world_size"],
        **epoch_figures(product.rows(run_id), sizes.torchrun_epochs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the log and gpu_check.json go")
    parser.add_argument("--smoke", action="store_true", help="every step at toy size on the CPU")
    parser.add_argument("--budget", type=float, default=510, help="seconds for all steps (default 510)")
    args = parser.parse_args(argv)
    sizes = Sizes(args.smoke)
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("bench.gpu_check needs a GPU; use --smoke to check it elsewhere")
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.out, args.budget)
    check.summary["smoke"] = args.smoke
    work = Path(tempfile.mkdtemp(prefix="tricklab-gpu-check-"))
    os.environ.setdefault("TRICKLAB_BENCH_ROOT", str(work / "bench"))
    check.step("environment", environment)
    root_holder: list[Path] = []

    def data() -> dict[str, Any]:
        root, figures = build_data(sizes)
        root_holder.append(root)
        return figures

    check.step("data", data)
    if not root_holder:
        check.write()
        return 1
    root = root_holder[0]
    epoch_args = ("--run-epochs", "0", "--no-compile", *(["--smoke"] if args.smoke else []))
    check.step("throughput", lambda: bench_module("gpu_epoch", *epoch_args, timeout=240), needs=60)
    tricks_args = (
        "--student",
        "resnet50",
        "--teacher",
        "resnet152",
        "--image-size",
        "224",
        "--batch-size",
        "64",
        "--steps",
        "10",
        "--rounds",
        "2",
    )
    check.step(
        "tricks_overhead",
        lambda: bench_module("tricks_overhead", *(["--smoke"] if args.smoke else tricks_args), timeout=120),
        needs=40,
    )
    product = Product(work, data_root=root, check=check)
    try:
        check.step("product_run_kill_resume", lambda: product_run(product, sizes, root), needs=90)
        check.step("sync_and_memory", lambda: sync_and_memory(sizes, root, work), needs=30)
        check.step("torchrun_run", lambda: torchrun_run(product, sizes, root), needs=40)
        if not args.smoke:
            check.step("compile_run", lambda: compile_run(sizes, root, work), needs=100)
        study_budget = sizes.study_budget or max(30.0, check.left() - 15)
        check.step("seed_study", lambda: study(product, sizes, root, budget=study_budget), needs=45)
    finally:
        product.close()
    check.write()
    check.say(f"done in {check.summary['wall_s']} s; failed: {check.summary['failed'] or 'none'}")
    return 1 if check.summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
