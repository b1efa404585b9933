"""The trainer's commands: ``tricklab train``, ``tricklab data ...`` and ``python -m trainer run``.

The ``tricklab`` console script (backend.cli) adds these beside the server's own commands.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from datetime import datetime
from pathlib import Path

from trainer.config import ConfigError, RunConfig, add_config_arguments, parse_set_arguments
from trainer.data.commands import add_data_commands
from trainer.data.cub import DatasetError
from trainer.models import TeacherError, WeightsUnavailable
from trainer.protocol import EXIT_FAILED, EXIT_SUPERSEDED, ErrorEvent, EventType, RunFolder, Superseded
from trainer.reporters import ConsoleReporter, FanOut, JsonLinesReporter, TensorBoardReporter
from trainer.run import RunError, train_run

# Problems a user fixes by changing a config, a path or a download: a message is enough.
USER_ERRORS = (ConfigError, RunError, DatasetError, WeightsUnavailable, TeacherError)


def add_trainer_commands(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train one run from a config file, with a progress bar",
        description="Train one run. The run folder gets config.json, metrics.jsonl, result.json, tb/ and "
        "checkpoints/; starting again on the same folder resumes from its last checkpoint.",
    )
    add_config_arguments(train)
    train.add_argument("--out", type=Path, help="run folder (default: runs/<name>-<date>)")
    train.set_defaults(handler=_train)
    add_data_commands(subparsers)


def _train(args: argparse.Namespace) -> int:
    run_dir = args.out
    try:
        config = RunConfig.load(args.config, parse_set_arguments(args.overrides))
        run_dir = args.out or Path("runs") / f"{config.name}-{datetime.now():%Y%m%d-%H%M%S}"
        folder = RunFolder(run_dir)
        _prepare_folder(folder, config)
        print(f"run folder: {run_dir}  (tensorboard --logdir {folder.tensorboard})", file=sys.stderr)
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
        return 130
    return 0


def _prepare_folder(folder: RunFolder, config: RunConfig) -> None:
    if folder.config.exists():
        existing = RunConfig.load(folder.config)
        if existing.fingerprint() != config.fingerprint():
            raise RunError(f"{folder.path} holds a run with a different config; choose another --out")
        return
    folder.path.mkdir(parents=True, exist_ok=True)
    config.save(folder.config)


def run_main(argv: list[str] | None = None) -> int:
    """``python -m trainer run RUN_DIR``: JSON lines on stdout for the worker, TensorBoard files."""
    parser = argparse.ArgumentParser(prog="python -m trainer")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train a prepared run folder (its config.json), resuming if possible")
    run.add_argument("run_dir", type=Path)
    run.add_argument("--attempt", type=int, help="the worker's attempt number, checked against RUN_DIR/ATTEMPT")
    args = parser.parse_args(argv)

    events = JsonLinesReporter()
    reporter = FanOut([events, TensorBoardReporter(RunFolder(args.run_dir).tensorboard)])
    try:
        train_run(args.run_dir, reporter=reporter, attempt=args.attempt)
    except Superseded as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return EXIT_SUPERSEDED
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        events.emit(EventType.error, ErrorEvent(message=str(exc)))
        return EXIT_FAILED
    except BrokenPipeError:
        # The worker that read our stdout is gone; nobody is left to report to.
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the worker needs a message for any crash
        traceback.print_exc()
        events.emit(EventType.error, ErrorEvent(message=f"{type(exc).__name__}: {exc}"))
        return EXIT_FAILED
    finally:
        reporter.close()
    return 0
