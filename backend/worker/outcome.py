"""How an attempt ends, once its trainer has exited: cancelled, handed back to the queue, succeeded
or failed with the reason and the tail of the trainer's stderr."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterable
from typing import Any

from backend.models import FailureKind
from backend.services import queue as jobs
from backend.worker.recorder import AttemptRecorder
from trainer.protocol import EXIT_SUPERSEDED, MACHINE_FAULTS

log = logging.getLogger("tricklab.worker")


def record_outcome(
    recorder: AttemptRecorder,
    *,
    returncode: int,
    stopping: bool,
    stderr_tail: Iterable[str],
    worker_name: str,
    stale_after_seconds: float,
) -> None:
    """Store the events still pending, then the attempt's end; ``stopping``: the worker stopped it."""
    # A database outage at the end should not cost a finished run: keep trying while the run
    # is still ours (until half the stale timeout, after which another worker may take it).
    deadline = time.monotonic() + stale_after_seconds / 2
    while recorder.pending and not recorder.lost and time.monotonic() < deadline:
        time.sleep(recorder.retry_seconds)
        recorder.store_pending()
        recorder.flush_steps()
    if recorder.lost or recorder.pending:
        if recorder.pending:
            log.error(
                "run %s attempt %s: database unreachable, %d events not stored; the run will be requeued",
                recorder.run_id,
                recorder.attempt,
                len(recorder.pending),
            )
        return
    if recorder.cancel:
        recorder.write_patiently(jobs.mark_cancelled, deadline=deadline)
        outcome = "cancelled"
    elif stopping:
        recorder.write_patiently(
            jobs.fail,
            deadline=deadline,
            kind=FailureKind.infrastructure,
            error=f"attempt {recorder.attempt}: worker {worker_name} was stopped",
        )
        outcome = "handed back to the queue"
    elif recorder.fault in MACHINE_FAULTS and recorder.error:
        # The machine's fault: back to the queue, no training attempt charged; the worker pauses.
        recorder.write_patiently(jobs.fail, deadline=deadline, kind=FailureKind.infrastructure, error=recorder.error)
        outcome = f"handed back to the queue: {recorder.error}"
    elif returncode == 0 and recorder.result is not None:
        recorder.write_patiently(jobs.succeed, deadline=deadline, result=recorder.result)
        outcome = "succeeded"
    else:
        reason = failure_reason(returncode, recorder.error, last_epoch=recorder.last_epoch)
        tail = "".join(stderr_tail).rstrip()
        error = reason + (f"\n--- last lines of stderr ---\n{tail}" if tail else "")
        status = recorder.write_patiently(jobs.fail, deadline=deadline, error=error, kind=FailureKind.training)
        outcome = f"failed, now {status or 'lost'}: {reason}"
    log.info("run %s attempt %s: %s", recorder.run_id, recorder.attempt, outcome)


def failure_reason(returncode: int, error: str | None, *, last_epoch: dict[str, Any] | None = None) -> str:
    """Why a trainer that exited with ``returncode``, having reported ``error`` (or not), failed.
    The worker's own stops (cancel, shutdown, a lost run) never come here: a signal is someone else's."""
    if returncode == 0:
        return "the trainer exited without a result"
    if returncode == EXIT_SUPERSEDED:
        return "the trainer refused to write: RUN_DIR/ATTEMPT names another attempt"
    if returncode == -signal.SIGKILL and not error:
        return _killed_by_the_system(last_epoch)
    if returncode < 0:
        return error or f"the trainer was killed by {signal.Signals(-returncode).name}"
    return error or f"the trainer exited with code {returncode}"


def _killed_by_the_system(last_epoch: dict[str, Any] | None) -> str:
    """SIGKILL, which tricklab did not send: most often the kernel's out-of-memory killer."""
    peak = last_epoch.get("peak_rss_bytes") if last_epoch else None
    if last_epoch is None:
        memory = "before its first epoch ended"
    elif peak is None:
        memory = f"after epoch {last_epoch['epoch']}"
    else:
        memory = f"its resident memory had peaked at {_size(peak)} by epoch {last_epoch['epoch']}"
    return (
        f"the system killed the trainer (SIGKILL, not sent by tricklab), most likely for lack of memory: {memory}; "
        "the kernel log (dmesg) names the out-of-memory killer if it was that; "
        "a smaller batch, image size or fewer loader workers need less"
    )


def _size(count: int) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"
