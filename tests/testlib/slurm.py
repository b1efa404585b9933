"""The real single-host Slurm the tests submit to (scripts/slurm, as root), and a dispatcher on it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from backend.models import EpochMetric, Run, RunStatus
from backend.services import runs as run_service
from testlib.processes import REPO
from tricklab.local import wait_for

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
    elif not all(shutil.which(name) for name in ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "sbatch")):
        reason = "Slurm is not installed (scripts/test installs Debian's slurm-wlm, slurmdbd, mariadb-server and munge)"
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


TINY: dict[str, Any] = {
    "model": {"arch": "resnet18", "pretrained": False},
    "batch_size": 16,
    "data": {"image_size": 32, "num_workers": 0},
}
HOST = socket.gethostname().split(".")[0]


def create(db, settings, *, name: str, epochs: int = 1, priority: int = 0, image_size: int = 32, **config: Any) -> int:
    data = {**TINY["data"], "root": str(settings.data_roots[0]), "image_size": image_size}
    values = {**TINY, "name": name, "epochs": epochs, "data": data, **config}
    with db.session(write=True) as session:
        return run_service.create_run(session=session, settings=settings, config=values, priority=priority).id


def get(db, run_id: int) -> Run:
    with db.session() as session:
        return session.get_one(Run, run_id)


def job_of(db, run_id: int) -> int | None:
    return get(db, run_id).slurm_job_id


def epochs(db, run_id: int) -> list[tuple[int, int]]:
    with db.session() as session:
        rows = session.scalars(select(EpochMetric).where(EpochMetric.run_id == run_id).order_by(EpochMetric.epoch))
        return [(row.epoch, row.attempt) for row in rows]


def job_field(conf: str, job_id: int | None, field: str) -> str:
    """One of squeue's fields (State, Comment, ...) for one job, ended ones too."""
    return slurm(conf, "squeue", "--noheader", "--states=all", "-j", str(job_id), "-O", f"{field}:|").strip().strip("|")


def comments(conf: str) -> list[str]:
    """The comment of every job squeue lists, ended ones too."""
    return [line.strip("|") for line in slurm(conf, "squeue", "--noheader", "--states=all", "-O", "Comment:|").split()]


def ended(db, *run_ids: int, timeout: float) -> None:
    finals = {RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled}
    wait_for(lambda: all(get(db, run_id).status in finals for run_id in run_ids), timeout=timeout, what="runs to end")
