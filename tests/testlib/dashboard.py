"""`tricklab serve` (uvicorn and its workers) on a free port, for the end-to-end and browser tests and
the README's screenshot script: the real server, workers and trainer, on a folder of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from backend.settings import Settings
from testlib.processes import free_port

# A run that trains in seconds on a CPU: the shapes and code paths of a real one, nothing more.
TINY_RUN: dict[str, Any] = {
    "model": {"arch": "resnet18", "pretrained": False},
    "data": {"image_size": 32, "num_workers": 0},
    "epochs": 2,
    "batch_size": 16,
}
FINAL = ("succeeded", "failed", "cancelled")


def settings_for(home: Path, data_root: Path, *, poll_seconds: float = 0.5) -> Settings:
    return Settings(
        database_url=f"sqlite:///{home / 'tricklab.db'}",
        runs_dir=home / "runs",
        data_roots=[data_root],
        sse_poll_seconds=0.2,
        poll_seconds=poll_seconds,
    )


class ServerError(RuntimeError):
    """The server did not start, or a run did not end as expected; the message ends with its log."""


@dataclass
class Dashboard:
    url: str
    data_root: Path
    log: Path

    @property
    def database_url(self) -> str:
        """The SQLite file the server and its workers share (``serve`` puts it beside the log)."""
        return f"sqlite:///{self.log.parent / 'tricklab.db'}"

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:]

    def submit(self, name: str, **changes: Any) -> dict[str, Any]:
        """Queue TINY_RUN with top-level ``changes``; a changed section replaces TINY_RUN's, except data."""
        data = {**TINY_RUN["data"], "root": str(self.data_root), **changes.pop("data", {})}
        config = {**TINY_RUN, "name": name, **changes, "data": data}
        answer = httpx.post(f"{self.url}/api/v1/runs", json={"config": config}, timeout=30)
        if answer.status_code != 201:
            raise ServerError(f"submitting {name!r} answered {answer.status_code}: {answer.text}")
        return answer.json()

    def run(self, run_id: int) -> dict[str, Any]:
        return httpx.get(f"{self.url}/api/v1/runs/{run_id}", timeout=30).json()

    def wait(self, run_id: int, statuses: tuple[str, ...] = FINAL, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (run := self.run(run_id))["status"] not in statuses:
            if time.monotonic() > deadline:
                raise ServerError(
                    f"run {run_id} is {run['status']} after {timeout} s, not {statuses}:\n{self.log_tail()}"
                )
            time.sleep(0.5)
        return run

    def get(self, path: str, **params: Any) -> Any:
        """The JSON of GET /api/v1``path``, which must answer 200."""
        answer = httpx.get(f"{self.url}/api/v1{path}", params=params, timeout=30)
        if answer.status_code != 200:
            raise ServerError(f"GET {path} answered {answer.status_code}: {answer.text}")
        return answer.json()

    def post_study(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = httpx.post(f"{self.url}/api/v1/studies", json=body, timeout=60)
        if answer.status_code != 201:
            raise ServerError(f"creating study {body.get('name')!r} answered {answer.status_code}: {answer.text}")
        return answer.json()

    def wait_finished(self, study_id: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not (study := self.get(f"/studies/{study_id}"))["finished"]:
            if time.monotonic() > deadline:
                raise ServerError(
                    f"study {study_id} not finished after {timeout} s: {study['progress']}:\n{self.log_tail()}"
                )
            time.sleep(1)
        return study


@contextmanager
def serve(
    home: Path, data_root: Path, *, workers: int = 1, poll_seconds: float = 0.5, start_timeout: float = 90
) -> Iterator[Dashboard]:
    """Run `tricklab serve` with its database and runs in ``home``; stop it (and its workers) on exit."""
    port = free_port()
    log = home / "server.log"
    env = {**os.environ, **settings_for(home, data_root, poll_seconds=poll_seconds).environ()}
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "backend", "serve", "--port", str(port), "--workers", str(workers)],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    dashboard = Dashboard(f"http://127.0.0.1:{port}", data_root, log)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if httpx.get(f"{dashboard.url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise ServerError(f"tricklab serve did not start:\n{dashboard.log_tail()}")
            time.sleep(0.3)
        yield dashboard
    finally:
        server.send_signal(signal.SIGTERM)  # it stops its workers, which stop their trainers
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
