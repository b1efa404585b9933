"""An attempt's trainer child: started in a session of its own, its stdout read as JSON-line events
and the tail of its stderr kept, each by a thread; stopped, and reaped, as a whole process group."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from trainer.forked import ForkedTrainer, launch_forked
from trainer.processes import die_with_parent
from trainer.protocol import MalformedEvent, parse_event

log = logging.getLogger("tricklab.worker")

STDERR_LINES = 40
_EOF = object()


class TrainerChild:
    """A started trainer process. ``next_event`` hands over what it printed; ``stdout_closed`` tells
    when it has printed all it will."""

    def __init__(self, command: Sequence[str], env: dict[str, str], *, fork_server: Path | None = None):
        """Start ``command``, forked by the fork server listening on ``fork_server`` where it can be;
        OSError when it cannot be started at all."""
        forked = launch_forked(command, env, socket_path=fork_server) if fork_server is not None else None
        self.process: subprocess.Popen | ForkedTrainer = forked or subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,
            preexec_fn=die_with_parent(os.getpid()),  # noqa: PLW1509 - only prctl, before exec
        )
        self.stdout_closed = False
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._events: queue.Queue = queue.Queue()
        self._readers = [
            threading.Thread(target=_read_events, args=(self.process.stdout, self._events), daemon=True),
            threading.Thread(target=_read_tail, args=(self.process.stderr, self.stderr_tail), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None when none came within ``timeout`` or stdout has closed."""
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            return None
        if event is _EOF:
            self.stdout_closed = True
            return None
        return event

    def stop(self, *, grace: float) -> None:
        """SIGTERM the trainer's whole process group (its data loader workers too), then SIGKILL."""
        _kill_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill_group(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def reap(self) -> int:
        """Wait for the trainer to exit, kill what it left behind in its group, and return its exit code
        once its output is read to the end."""
        returncode = self.process.wait()
        _kill_group(self.process.pid, signal.SIGKILL)
        for reader in self._readers:
            reader.join(timeout=5)
        return returncode

    def remaining_events(self) -> list[dict[str, Any]]:
        """The events printed before it exited and not yet handed over (a result may be among them)."""
        events: list[dict[str, Any]] = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return events
            if event is not _EOF:
                events.append(event)


def _read_events(stream: IO[str], events: queue.Queue) -> None:
    """Events, one JSON object per line; any other line the trainer prints is ignored."""
    for line in stream:
        try:
            event = parse_event(line)
        except MalformedEvent:
            log.warning("ignoring a malformed trainer event: %.200s", line.strip())
            continue
        if event is not None:
            events.put(event)
    events.put(_EOF)


def _read_tail(stream: IO[str], tail: collections.deque) -> None:
    for line in stream:
        tail.append(line)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
