"""The real single-host Slurm the tests submit to (scripts/slurm, as root), and a dispatcher on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testlib.processes import REPO

SLURM_ENV = "TRICKLAB_TEST_SLURM_CONF"


def start_slurm() -> str:
    """The slurm.conf of a running cluster: the one scripts/test started (SLURM_ENV), else started now.
    Skips where that cannot be (not root, Slurm not installed); in CI it must run."""
    given = os.environ.get(SLURM_ENV)
    if given:
        return given
    reason = None
    if os.geteuid() != 0:
        reason = "starting slurmctld and slurmd needs root"
    elif not all(shutil.which(name) for name in ("slurmctld", "slurmd", "munged", "sbatch")):
        reason = "Slurm is not installed (scripts/test installs Debian's slurm-wlm and munge)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the Slurm tests must run in CI: {reason}")
        pytest.skip(f"no Slurm to test against: {reason}")
    done = subprocess.run([str(REPO / "scripts" / "slurm")], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(f"scripts/slurm failed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def slurm(conf: str, *argv: str) -> str:
    """A Slurm command against the test cluster, as a user's shell would run it."""
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=True, env={**os.environ, "SLURM_CONF": conf}
    )
    return done.stdout


def start_dispatcher(conf: str, environ: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    """``tricklab worker --slurm ARGS`` as a real subprocess, its jobs' environment ``environ``."""
    return subprocess.Popen(
        [sys.executable, "-m", "backend", "worker", "--slurm", *args],
        cwd=REPO,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **environ, "SLURM_CONF": conf},
    )
