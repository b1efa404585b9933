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
from pathlib import Path

import httpx

HEALTH = "/api/v1/health"
STOP_SECONDS = 30


class ServerDidNotStart(RuntimeError):
    """The command exited, or did not answer in time; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tricklab_serve(*args: str) -> Callable[[int], Sequence[str]]:
    """``tricklab serve ARGS --port PORT`` with this Python (``--no-worker``, ``--workers 2``, ...)."""
    return lambda port: [sys.executable, "-m", "backend", "serve", *args, "--port", str(port)]


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 now."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def serving(
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    command: Callable[[int], Sequence[str]] = tricklab_serve("--no-worker"),
    timeout: float = 90,
    health: str = HEALTH,
) -> Iterator[str]:
    """The base URL of the server ``command(port)`` starts in ``cwd`` (its output in ``log``), once
    ``health`` answers 200; ServerDidNotStart with the log's end if it exits or ``timeout`` passes first.

    On exit the server gets SIGTERM (tricklab's stops its workers, which stop their trainers), then
    SIGKILL after 30 s.
    """
    port = free_port()
    with log.open("w") as out:
        server = subprocess.Popen(
            list(command(port)),
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not answers(url + health):
            if server.poll() is not None or time.monotonic() > deadline:
                state = f"exited with {server.returncode}" if server.returncode is not None else f"no answer in {timeout:g} s"
                raise ServerDidNotStart(f"the server in {cwd} did not start ({state}):\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
