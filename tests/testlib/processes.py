"""Starting processes and servers: the repository they run in, a free port, waiting for a condition."""

from __future__ import annotations

import os
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
