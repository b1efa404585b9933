"""A server started here for a test, a benchmark or a script: any command on a free port, waited for
until its health check answers, stopped with SIGTERM. ``tricklab serve`` by default; MLflow's server
or an older checkout of tricklab's pass their own command."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HEALTH = "/api/v1/health"
STOP_SECONDS = 30


class ServerDidNotStart(RuntimeError):
    """The command exited, or did not answer in time; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.05) -> Any:
    """``condition()``'s first true value, asked every ``interval`` s; TimeoutError naming ``what``
    once ``timeout`` s have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"waited {timeout:g} s for {what}")


def tricklab_serve(*args: str) -> Callable[[int], Sequence[str]]:
    """``tricklab serve ARGS --port PORT`` with this Python (``--no-worker``, ``--workers 2``, ...)."""
    return lambda port: [sys.executable, "-m", "backend", "serve", *args, "--port", str(port)]


# What benchmarks load: the API alone, nothing training beside it.
SERVE_WITHOUT_WORKERS = tricklab_serve("--no-worker")


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@dataclass
class LocalServer:
    url: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> int:
        """SIGTERM (tricklab's server stops its workers, which stop their trainers), then SIGKILL after
        30 s; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@contextmanager
def serving(
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    command: Callable[[int], Sequence[str]] = SERVE_WITHOUT_WORKERS,
    timeout: float = 90,
    health: str = HEALTH,
) -> Iterator[LocalServer]:
    """The server ``command(port)`` starts in ``cwd`` (its output in ``log``), once ``health`` answers
    200; ServerDidNotStart with the log's end if it exits or ``timeout`` passes first. Stopped on exit.
    """
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            list(command(port)),
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = LocalServer(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + timeout
        while not answers(server.url + health):
            if process.poll() is not None or time.monotonic() > deadline:
                state = f"exited with {process.returncode}" if process.returncode is not None else "no answer"
                raise ServerDidNotStart(f"the server in {cwd} did not start ({state}):\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        server.stop()
