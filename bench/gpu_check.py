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
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from bench.common import replicated_dataset, scratch_folder
from bench.gpu_epoch import Take, source_batches
from bench.gpu_product import product, product_run, study, torchrun_run
from bench.gpu_sizes import Check, Sizes, run_config
from trainer.config import KDConfig, OptimConfig, ScheduleConfig, TricksConfig
from trainer.data.cub import read_cub
from trainer.data.dataset import make_splits
from trainer.data.loaders import build_batch_sources
from trainer.loop.checkpoint import load_checkpoint, save_checkpoint
from trainer.loop.engine import train_one_epoch
from trainer.models.build import build_model
from trainer.models.param_groups import build_optimizer
from trainer.tricks.recipe import Tricks
from trainer.tricks.schedules import build_schedule

REPO = Path(__file__).resolve().parents[1]


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
    work = scratch_folder("tricklab-gpu-check-")
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
    # The full check times whole runs in its product steps; the smoke check times one epoch here too, so
    # that it covers all of bench.gpu_epoch and the suite need not run that benchmark a second time.
    epoch_args = ("--no-compile", *(["--smoke", "--run-epochs", "1"] if args.smoke else ["--run-epochs", "0"]))
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
    with product(work, data_root=root, check=check) as running:
        check.step("product_run_kill_resume", lambda: product_run(running, sizes, root), needs=90)
        check.step("sync_and_memory", lambda: sync_and_memory(sizes, root, work), needs=30)
        check.step("torchrun_run", lambda: torchrun_run(running, sizes, root), needs=40)
        if not args.smoke:
            check.step("compile_run", lambda: compile_run(sizes, root, work), needs=100)
        study_budget = sizes.study_budget or max(30.0, check.left() - 15)
        check.step("seed_study", lambda: study(running, sizes, root, budget=study_budget), needs=45)
    check.write()
    check.say(f"done in {check.summary['wall_s']} s; failed: {check.summary['failed'] or 'none'}")
    return 1 if check.summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
