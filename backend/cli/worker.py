"""``tricklab worker``: claim queued runs and train them, on the devices this worker owns."""

from __future__ import annotations

import argparse
import re

from backend.cli.common import load_settings, log_to_stderr


def add_command(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser(
        "worker",
        help="claim queued runs and train them, one at a time",
        description="Claim queued runs (highest priority, then oldest) and train each in a child "
        "process, on the devices this worker owns: one GPU, several GPUs (one torchrun per run, a "
        "process per GPU; batch_size stays the global batch) or CPU processes. Workers on one host "
        "own disjoint GPUs.",
    )
    devices = worker.add_mutually_exclusive_group()
    devices.add_argument(
        "--device",
        type=_device,
        default=None,
        help="cuda:N (shows the trainer only GPU N), cuda, cpu or auto (default: as each run's config says)",
    )
    devices.add_argument(
        "--gpus",
        type=_gpus,
        metavar="I,J,...",
        help="own these GPUs (indexes among the visible ones, as nvidia-smi counts them) and train each "
        "run on all of them: --gpus 0 is one GPU, --gpus 0,1,2,3 four processes under torchrun (NCCL)",
    )
    devices.add_argument(
        "--procs",
        type=_procs,
        metavar="N",
        help="train each run on N CPU processes under torchrun (gloo), to try distributed training without GPUs",
    )
    worker.add_argument("--once", action="store_true", help="train at most one run, then exit")
    worker.add_argument("--exit-when-idle", action="store_true", help="exit once no run is ready to claim")
    worker.set_defaults(handler=_worker)


def _device(text: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or auto, got {text!r}")
    return text


def _gpus(text: str) -> list[int]:
    indexes = [part.strip() for part in text.split(",")]
    if not all(index.isdigit() for index in indexes):
        raise argparse.ArgumentTypeError(f"expected GPU indexes like 0 or 0,1,2,3, got {text!r}")
    return [int(index) for index in indexes]


def _procs(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes of at least 1, got {text!r}")
    return int(text)


def _worker(args: argparse.Namespace) -> int:
    from backend.placement import PlacementError, placement
    from backend.worker.loop import run_worker

    log_to_stderr()
    settings = load_settings()
    try:
        where = placement(device=args.device, gpus=args.gpus, procs=args.procs)
        return run_worker(settings=settings, placement=where, once=args.once, exit_when_idle=args.exit_when_idle)
    except PlacementError as exc:
        raise SystemExit(f"tricklab worker: {exc}") from None
