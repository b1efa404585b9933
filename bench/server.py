"""A server for the benchmarks, `tricklab serve --no-worker` unless told otherwise: its own process on a
free port, stopped with SIGTERM."""

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tricklab_serve(port: int) -> Sequence[str]:
    return [sys.executable, "-m", "backend", "serve", "--no-worker", "--port", str(port)]


@contextmanager
def serving(
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Path,
    timeout: float = 90,
    command: Callable[[int], Sequence[str]] = tricklab_serve,
    health: str = "/api/v1/health",
) -> Iterator[str]:
    """The URL of the server that ``command(port)`` starts, once ``health`` answers 200; SystemExit
    with its log's end if it does not."""
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
        while True:
            try:
                if httpx.get(f"{url}{health}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server in {cwd} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
