"""Starting processes and servers: the repository they run in, a free port, waiting for a condition."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# A base URL for TestClient whose Host a loopback server answers (its default, "testserver", gets 400).
LOOPBACK = "http://127.0.0.1"


def tricklab(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path = REPO
) -> subprocess.CompletedProcess:
    """``tricklab ARGV`` as a subprocess, its output captured; ``env`` is added to this environment."""
    return subprocess.run(
        [sys.executable, "-m", "backend", *argv],
        check=False,  # the test reads the exit code
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def stop_processes(processes: list[subprocess.Popen], *, grace: float) -> None:
    """SIGTERM each process still running, then SIGKILL those not gone ``grace`` seconds later."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
