"""``tricklab worker``: claim queued runs and train them, on the devices this worker owns; with ``--slurm``,
hand each to a Slurm job instead (``backend.worker.slurm``)."""

from __future__ import annotations

import argparse
import re
import shlex
from typing import TYPE_CHECKING

from backend.cli.common import load_settings, log_to_stderr

if TYPE_CHECKING:
    from backend.settings import Settings


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
    _add_slurm_arguments(worker)
    worker.set_defaults(handler=_worker)


def _add_slurm_arguments(worker: argparse.ArgumentParser) -> None:
    slurm = worker.add_argument_group(
        "on a Slurm cluster (--slurm)",
        "Run on a login node: each ready run becomes one Slurm job, which trains it and writes to the database "
        "(PostgreSQL, reached from every node) and the shared runs folder itself.",
    )
    slurm.add_argument("--slurm", action="store_true", help="submit each ready run as one Slurm job")
    slurm.add_argument("--partition", help="sbatch --partition")
    slurm.add_argument("--account", help="sbatch --account")
    slurm.add_argument("--qos", help="sbatch --qos")
    slurm.add_argument("--time", help="sbatch --time, the job's time limit (e.g. 4:00:00)")
    slurm.add_argument("--nodes", type=_procs, default=1, help="nodes per run, one torchrun on each (default 1)")
    slurm.add_argument("--gpus-per-node", type=_count, default=0, help="GPUs per node, one process on each")
    slurm.add_argument(
        "--tasks-per-node", type=_procs, default=1, help="without GPUs: training processes per node, over gloo"
    )
    slurm.add_argument("--cpus-per-task", type=_procs, help="sbatch --cpus-per-task")
    slurm.add_argument("--mem-per-task", type=_memory, metavar="SIZE", help="memory per task, e.g. 16G")
    slurm.add_argument(
        "--sbatch", type=shlex.split, default=[], metavar="ARGS", help="more sbatch arguments, e.g. '--constraint=a100'"
    )
    slurm.add_argument("--max-pending", type=_procs, default=4, help="jobs kept pending in Slurm at once (default 4)")
    slurm.add_argument(
        "--warning-lead",
        type=_count,
        default=180,
        metavar="SECONDS",
        help="the warning signal before a time limit or preemption, to checkpoint and requeue (default 180)",
    )
    # Inside a job: the batch script's command (RUN:ATTEMPT).
    slurm.add_argument("--slurm-job", help=argparse.SUPPRESS)


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


# The Slurm flags and their defaults: any other value without --slurm is a mistake, named.
SLURM_DEFAULTS: dict[str, object] = {
    "partition": None,
    "account": None,
    "qos": None,
    "time": None,
    "nodes": 1,
    "gpus_per_node": 0,
    "tasks_per_node": 1,
    "cpus_per_task": None,
    "mem_per_task": None,
    "sbatch": [],
    "max_pending": 4,
    "warning_lead": 180,
}


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return int(text)


def _memory(text: str) -> str:
    if not re.fullmatch(r"\d+[KMGT]?", text):
        raise argparse.ArgumentTypeError(f"expected a size such as 4096M or 16G, got {text!r}")
    return text


def _worker(args: argparse.Namespace) -> int:
    from backend.placement import PlacementError, placement
    from backend.worker.loop import run_worker

    log_to_stderr()
    settings = load_settings()
    if args.slurm_job:
        return _slurm_job(args, settings)
    if args.slurm:
        return _dispatch(args, settings)
    given = [flag for flag, default in SLURM_DEFAULTS.items() if getattr(args, flag) != default]
    if given:
        raise SystemExit(f"tricklab worker: --{given[0].replace('_', '-')} is for --slurm, which was not given")
    try:
        where = placement(device=args.device, gpus=args.gpus, procs=args.procs)
        return run_worker(settings=settings, placement=where, once=args.once, exit_when_idle=args.exit_when_idle)
    except PlacementError as exc:
        raise SystemExit(f"tricklab worker: {exc}") from None


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from backend.worker.slurm.dispatcher import SlurmOptions, run_dispatcher

    if args.device or args.gpus or args.procs or args.once:
        raise SystemExit("tricklab worker --slurm: --device, --gpus, --procs and --once are for a worker on this host")
    options = SlurmOptions(
        partition=args.partition,
        account=args.account,
        qos=args.qos,
        time=args.time,
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        tasks_per_node=args.tasks_per_node,
        cpus_per_task=args.cpus_per_task,
        mem_per_task=args.mem_per_task,
        sbatch=tuple(args.sbatch),
        max_pending=args.max_pending,
        warning_lead_seconds=args.warning_lead,
        cancel_grace_seconds=settings.kill_grace_seconds * 10,
    )
    return run_dispatcher(settings=settings, options=options, exit_when_idle=args.exit_when_idle)


def _slurm_job(args: argparse.Namespace, settings: Settings) -> int:
    from backend.placement import Placement
    from backend.worker.slurm.job import run_job

    run_id, _, attempt = args.slurm_job.partition(":")
    processes = args.nodes * (args.gpus_per_node or args.tasks_per_node)
    if args.gpus_per_node:
        where = Placement("cuda", processes=processes, label="cuda")
    elif processes > 1:
        where = Placement("cpu", {"CUDA_VISIBLE_DEVICES": ""}, processes=processes, label=f"cpu×{processes}")
    else:
        where = Placement()
    return run_job(
        settings=settings,
        run_id=int(run_id),
        attempt=int(attempt),
        nodes=args.nodes,
        per_node=args.gpus_per_node or args.tasks_per_node,
        placement=where,
    )
