"""``python -m trainer launch [--events] TORCHRUN-ARGS``: torchrun, naming the rank that failed.

This is torchrun itself: PyTorch's ``torch.distributed.run``, its arguments and its elastic agent.
What it adds is the error. When one rank dies the others fail too, having lost their peer, and
torchrun picks its "root cause" by a timestamp in whole seconds, often naming a rank that only lost
its peer. Here a rank killed by a signal torchrun did not send comes first (torchrun stops the
survivors with SIGTERM), then the rank whose error file is oldest (``python -m trainer run`` writes
one per rank, where torchrun's TORCHELASTIC_ERROR_FILE says), then the lowest rank that failed.
That rank's error and the last lines of its stderr (when ``--log-dir`` and ``--redirects`` keep
them) become one message on stderr and, with ``--events``, one error event on stdout: the worker's
view of the run, which keeps the last error event it reads.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainer.processes import LAUNCHER_PID_ENV
from trainer.protocol import (
    EXIT_FAILED,
    EXIT_SUPERSEDED,
    EXIT_WARNED,
    WARNING_SIGNAL,
    ErrorEvent,
    EventType,
    event_line,
)

STDERR_LINES = 20


def launch_main(argv: list[str]) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    events = argv[:1] == ["--events"]
    args = parse_args(argv[1:] if events else argv)
    os.environ[LAUNCHER_PID_ENV] = str(os.getpid())  # the ranks inherit it: see die_with_launcher
    try:
        run(args)
    except ChildFailedError as exc:
        if all(failure.exitcode == EXIT_WARNED for failure in exc.failures.values()):
            return EXIT_WARNED  # every rank stopped on the warning signal: the run resumes, nothing failed
        rank = root_cause(exc.failures)
        failure = exc.failures[rank]
        message = describe(rank, failure, log_dir=args.log_dir)
        print(f"error: {message}", file=sys.stderr)
        if events:
            sys.stdout.write(event_line(EventType.error, ErrorEvent(message=message)))
            sys.stdout.flush()
        return EXIT_SUPERSEDED if failure.exitcode == EXIT_SUPERSEDED else EXIT_FAILED
    except SignalException as exc:
        if exc.sigval == signal.Signals[WARNING_SIGNAL]:
            # Forwarded to the ranks (--signals-to-handle), which stopped at a step and exited EXIT_WARNED.
            return EXIT_WARNED
        # Stopped from outside (a cancel, Ctrl-C): torchrun has stopped every rank already.
        return 128 + int(exc.sigval)
    return 0


def root_cause(failures: Mapping[int, Any]) -> int:
    """The rank whose failure explains the others' (see the module docstring)."""
    killed = [rank for rank, failure in failures.items() if failure.exitcode < 0 and failure.signal_name() != "SIGTERM"]
    if killed:
        return min(killed)
    recorded = [
        (os.stat(failure.error_file).st_mtime_ns, rank)
        for rank, failure in failures.items()
        if os.path.isfile(failure.error_file)
    ]
    return min(recorded)[1] if recorded else min(failures)


def describe(rank: int, failure: Any, *, log_dir: str | None) -> str:
    """One rank's failure as the run's error says it: what happened, then its last stderr lines."""
    if failure.exitcode < 0:
        what = f"rank {rank} was killed by {failure.signal_name()}"
    elif os.path.isfile(failure.error_file):
        message = failure.message
        what = f"rank {rank}: {message.get('message', message) if isinstance(message, dict) else message}"
    else:
        what = f"rank {rank} exited with code {failure.exitcode}"
    tail = _stderr_tail(log_dir, local_rank=failure.local_rank)
    return what + (f"\n--- last lines of rank {rank}'s stderr ---\n{tail}" if tail else "")


def _stderr_tail(log_dir: str | None, *, local_rank: int) -> str:
    """The end of a rank's stderr file under torchrun's ``--log-dir`` (``<run id>/attempt_<k>/<local rank>/``)."""
    if not log_dir:
        return ""
    files = sorted(Path(log_dir).glob(f"*/attempt_*/{local_rank}/stderr.log"), key=lambda path: path.stat().st_mtime)
    if not files:
        return ""
    lines = files[-1].read_text(errors="replace").splitlines()
    return "\n".join(lines[-STDERR_LINES:]).rstrip()
