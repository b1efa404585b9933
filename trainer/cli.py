"""The trainer's commands: ``tricklab train``, ``tricklab data ...``, ``python -m trainer run`` and
``python -m trainer launch`` (torchrun, for runs on several processes).

The ``tricklab`` console script (backend.cli) adds these beside the server's own commands.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import traceback
from datetime import datetime
from pathlib import Path

from trainer.config import ConfigError, RunConfig
from trainer.config_arguments import add_config_arguments, parse_set_arguments
from trainer.data.commands import add_data_commands
from trainer.data.cub import DatasetError
from trainer.loop.reporters import (
    ConsoleReporter,
    FanOut,
    JsonLinesReporter,
    Reporter,
    SweepConsoleReporter,
    TensorBoardReporter,
)
from trainer.loop.run import train_run
from trainer.loop.setup import RunError
from trainer.loop.teacher import TeacherError
from trainer.loop.warning import listen as listen_for_warning
from trainer.lr_finder.sweep import CURVE_ROWS, LRSweep, curve_table
from trainer.models.build import WeightsUnavailable
from trainer.parallel.devices import DeviceError, check_cuda
from trainer.parallel.distributed import DistributedError, World, world_from_environment
from trainer.protocol import (
    EXIT_FAILED,
    EXIT_SUPERSEDED,
    EXIT_WARNED,
    ErrorEvent,
    EventType,
    RunFolder,
    Superseded,
    Warned,
    launch_command,
)

# Problems a user fixes by changing a config, a path or a download: a message is enough.
USER_ERRORS = (ConfigError, RunError, DatasetError, WeightsUnavailable, TeacherError, DistributedError, DeviceError)
EXIT_INTERRUPTED = 130


def add_trainer_commands(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train one run from a config file, with a progress bar",
        description="Train one run. The run folder gets config.json, metrics.jsonl, result.json, tb/ and "
        "checkpoints/; starting again on the same folder resumes from its last checkpoint. With "
        "--nproc-per-node N the run trains on N processes under torchrun (one per GPU, or gloo on CPUs); "
        "batch_size stays the global batch.",
    )
    add_config_arguments(train)
    train.add_argument("--out", type=Path, help="run folder (default: runs/<name>-<date>)")
    processes = train.add_argument_group("several processes (torchrun)")
    processes.add_argument(
        "--nproc-per-node", type=_positive, default=1, help="processes on this host: one per GPU (default 1)"
    )
    processes.add_argument(
        "--nnodes", type=_positive, default=1, help="hosts training together, each running this command (default 1)"
    )
    processes.add_argument("--node-rank", type=int, default=0, help="this host's place among them, 0 to NNODES-1")
    processes.add_argument(
        "--rdzv-endpoint", metavar="HOST:PORT", help="where the hosts meet (several hosts): a port on host 0"
    )
    train.set_defaults(handler=_train)
    _add_lr_find(subparsers)
    add_data_commands(subparsers)


def _add_lr_find(subparsers: argparse._SubParsersAction) -> None:
    lr_find = subparsers.add_parser(
        "lr-find",
        help="an LR range test of a config on this machine: the loss as the rate rises, and a rate to use",
        description="Train a fresh copy of the config's model for a few batches while optim.lr rises (each layer "
        "group at its share of it, as in the run), and print the smoothed loss per rate as a small table with the "
        "rate to put into optim.lr: the steepest descent of the loss (a tenth of the minimum's rate is shown "
        "too). The config's optimizer trains (Adam by default, as in the report's range test); the sweep's defaults "
        "are the report's: the rate from 1e-7 to 10 over 100 steps, "
        "exponentially, loss smoothed at 0.05, stopping once it exceeds 5x its lowest. Nothing is saved: the "
        "model is thrown away.",
    )
    add_config_arguments(lr_find)
    sweep = lr_find.add_argument_group("the sweep")
    for name, field in LRSweep.model_fields.items():
        sweep.add_argument(
            _flag(name),
            dest=f"sweep_{name}",
            metavar=name.upper(),
            help=f"{field.description} (default {field.default})",
        )
    lr_find.add_argument(
        "--rows", type=_count, default=CURVE_ROWS, help=f"rows of the table (default {CURVE_ROWS}; 0: every step)"
    )
    lr_find.set_defaults(handler=_lr_find)


def _flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _lr_find(args: argparse.Namespace) -> int:
    from trainer.lr_finder.range_test import range_test

    given = {name: getattr(args, f"sweep_{name}") for name in LRSweep.model_fields}
    try:
        config = RunConfig.load(args.config, parse_set_arguments(args.overrides))
        try:
            sweep = LRSweep.from_dict({name: value for name, value in given.items() if value is not None})
        except ConfigError as exc:
            raise ConfigError({_flag(name): message for name, message in exc.errors.items()}) from None
        reporter = SweepConsoleReporter(sweep.steps)
        try:
            analysis = range_test(config, sweep, reporter=reporter)
        finally:
            reporter.close()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    print(curve_table(analysis, rows=args.rows))
    return 0


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _train(args: argparse.Namespace) -> int:
    run_dir = args.out
    try:
        config = RunConfig.load(args.config, parse_set_arguments(args.overrides))
        world_size = args.nproc_per_node * args.nnodes
        config.rank_batch_size(world_size)
        rendezvous = _rendezvous(args)
        run_dir = args.out or Path("runs") / f"{config.name}-{datetime.now():%Y%m%d-%H%M%S}"
        folder = RunFolder(run_dir)
        _prepare_folder(folder, config)
        print(f"run folder: {run_dir}  (tensorboard --logdir {folder.tensorboard})", file=sys.stderr)
        if world_size > 1:
            return _train_under_torchrun(folder, nproc_per_node=args.nproc_per_node, rendezvous=rendezvous)
        reporter = FanOut([ConsoleReporter(), TensorBoardReporter(folder.tensorboard)])
        try:
            train_run(run_dir, reporter=reporter)
        finally:
            reporter.close()
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        if run_dir is not None:
            print(f"\nstopped; run the same command with --out {run_dir} to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _rendezvous(args: argparse.Namespace) -> list[str]:
    """torchrun's options that bring the hosts together; one host needs none (``--standalone``)."""
    if args.nnodes == 1:
        return ["--standalone"]
    if not args.rdzv_endpoint:
        raise ConfigError({"--rdzv-endpoint": f"{args.nnodes} hosts need HOST:PORT of host 0 to meet at"})
    if not 0 <= args.node_rank < args.nnodes:
        raise ConfigError({"--node-rank": f"{args.node_rank} is not between 0 and {args.nnodes - 1}"})
    if args.out is None:
        raise ConfigError({"--out": "several hosts train one run folder: give the same shared --out on each"})
    return [
        "--nnodes",
        str(args.nnodes),
        "--node-rank",
        str(args.node_rank),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        args.rdzv_endpoint,
        "--rdzv-id",
        f"tricklab-{Path(args.out).resolve().name}",
    ]


def _train_under_torchrun(folder: RunFolder, *, nproc_per_node: int, rendezvous: list[str]) -> int:
    """The run folder trained by ``python -m trainer run --console`` on each process, under torchrun."""
    command = launch_command(
        [sys.executable, "-m", "trainer", "run"], nproc_per_node=nproc_per_node, rendezvous=rendezvous, events=False
    )
    child = subprocess.Popen([*command, str(folder.path), "--console"])
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.wait()  # torchrun got the Ctrl-C too and stops its ranks
        raise


def _prepare_folder(folder: RunFolder, config: RunConfig) -> None:
    if folder.config.exists():
        existing = RunConfig.load(folder.config)
        if existing.fingerprint() != config.fingerprint():
            raise RunError(f"{folder.path} holds a run with a different config; choose another --out")
        return
    folder.path.mkdir(parents=True, exist_ok=True)
    config.save(folder.config)


def run_main(argv: list[str] | None = None) -> int:
    """``python -m trainer run RUN_DIR``: JSON lines on stdout for the worker, TensorBoard files.

    (``python -m trainer launch ...``, torchrun, goes to trainer.parallel.launch without this module's imports.)
    """
    parser = argparse.ArgumentParser(prog="python -m trainer")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="train a prepared run folder (its config.json), resuming if possible; with a sweep.json, "
        "run its LR range test",
    )
    run.add_argument("run_dir", type=Path, nargs="?")
    run.add_argument("--attempt", type=int, help="the worker's attempt number, checked against RUN_DIR/ATTEMPT")
    run.add_argument("--console", action="store_true", help="a progress bar on stderr instead of JSON events on stdout")
    run.add_argument(
        "--check-cuda",
        type=_positive,
        metavar="N",
        help="instead of training: check that N GPUs can be used, name them and exit (a GPU worker asks first)",
    )
    args = parser.parse_args(argv)
    if args.check_cuda is not None:
        return _check_cuda(args.check_cuda)
    if args.run_dir is None:
        run.error("the run folder (RUN_DIR) is required")

    listen_for_warning()
    events = JsonLinesReporter()
    try:
        world = world_from_environment()
    except DistributedError as exc:
        return _failed(exc, world=World(), events=events, message=str(exc))
    folder = RunFolder(args.run_dir)
    sweeps = folder.sweep.is_file()
    if sweeps:
        try:
            steps = LRSweep.load(folder.sweep).steps
        except ConfigError as exc:
            return _failed(exc, world=world, events=None if args.console else events, message=str(exc))
        # A range test's curve is its step events; it writes nothing into its folder, TensorBoard included.
        reporter: Reporter = SweepConsoleReporter(steps) if args.console else events
    else:
        progress = ConsoleReporter() if args.console else events
        reporter = FanOut([progress, TensorBoardReporter(folder.tensorboard)])
    try:
        if sweeps:
            from trainer.lr_finder.range_test import range_test_folder

            range_test_folder(args.run_dir, reporter=reporter, attempt=args.attempt)
        else:
            train_run(args.run_dir, reporter=reporter, attempt=args.attempt)
    except Superseded as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_SUPERSEDED
    except Warned as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_WARNED
    except USER_ERRORS as exc:
        return _failed(exc, world=world, events=None if args.console else events, message=str(exc))
    except BrokenPipeError:
        # The worker that read our stdout is gone; nobody is left to report to.
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the worker needs a message for any crash
        message = f"{type(exc).__name__}: {exc}"
        return _failed(exc, world=world, events=None if args.console else events, message=message, trace=True)
    finally:
        reporter.close()
    return 0


def _check_cuda(processes: int) -> int:
    try:
        print(check_cuda(processes))
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _failed(
    exc: BaseException, *, world: World, events: JsonLinesReporter | None, message: str, trace: bool = False
) -> int:
    """Say why the run failed: on stderr, to torchrun (which rank, see trainer.parallel.launch) and, from
    rank 0, as the error event the worker stores."""
    prefix = f"[rank {world.rank}] " if world.distributed else ""
    if trace:
        lines = traceback.format_exception(exc)
        sys.stderr.write("".join(prefix + line for chunk in lines for line in chunk.splitlines(keepends=True)))
    else:
        print(f"{prefix}error: {message}", file=sys.stderr)
    if world.distributed and os.environ.get("TORCHELASTIC_ERROR_FILE"):
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        ErrorHandler().record_exception(exc)
    if events is not None and world.is_main:
        fault = getattr(exc, "fault", None)
        events.emit(EventType.error, ErrorEvent(message=message, fault=fault) if fault else ErrorEvent(message=message))
    return EXIT_FAILED
