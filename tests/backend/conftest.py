"""Backend fixtures: real servers and workers (the databases and data root come from tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testlib.processes import REPO, stop_processes

from backend.db import Database
from backend.settings import Settings
from tricklab.local import free_port, wait_for

FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")
# Short intervals: a dead worker is noticed in 2 s, a cancel in 0.2 s.
FAST = {
    "heartbeat_seconds": 0.5,
    "stale_after_seconds": 2.0,
    "poll_seconds": 0.2,
    "kill_grace_seconds": 2.0,
    "sse_poll_seconds": 0.1,
}


def pytest_configure(config: pytest.Config) -> None:
    # Starlette 1.x nags about httpx in its TestClient; the tests that matter use real servers.
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture
def make_settings(tmp_path: Path, data_root: Path) -> Callable[..., Settings]:
    def make(database_url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "runs_dir": tmp_path / "runs",
            "data_roots": [data_root],
            "trainer_command": [sys.executable, str(FAKE_TRAINER)],
            **FAST,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def make_database() -> Iterator[Callable[[Settings], Database]]:
    """A migrated Database for the settings, disposed after the test."""
    from backend import migrate

    made: list[Database] = []

    def make(settings: Settings) -> Database:
        database = Database(settings.database_url)
        migrate.upgrade(database)
        made.append(database)
        return database

    yield make
    for database in made:
        database.dispose()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """``tricklab worker`` as a real subprocess; stopped (SIGTERM, then SIGKILL) after the test."""
    started: list[subprocess.Popen] = []

    def start(settings: Settings, *args: str) -> subprocess.Popen:
        log = (tmp_path / f"worker-{len(started)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "backend", "worker", *args],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **settings.environ()},
        )
        started.append(process)
        return process

    yield start
    stop_processes(started, grace=10)


@pytest.fixture
def live_server() -> Iterator[Callable[[Settings], str]]:
    """The app under a real uvicorn on a free port (in a thread); returns its base URL."""
    import uvicorn

    from backend.app import create_app

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(settings: Settings) -> str:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings), host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        wait_for(lambda: server.started, timeout=20, what="uvicorn to start")
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def slurm_settings(make_settings, make_database, sqlite_url, demo_dataset):
    """Settings and database for runs trained by the real trainer in Slurm jobs (tests/backend/test_slurm*.py)."""
    from backend.settings import default_trainer_command

    settings = make_settings(sqlite_url, data_roots=[demo_dataset], trainer_command=default_trainer_command())
    return settings, make_database(settings)


@pytest.fixture
def dispatchers(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """``tricklab worker --slurm`` as real subprocesses (testlib.slurm); SIGTERM, then SIGKILL, after the test."""
    from testlib.slurm import start_dispatcher

    started: list[subprocess.Popen] = []

    def start(conf: str, settings: Settings, *args: str) -> subprocess.Popen:
        process = start_dispatcher(conf, settings.environ(), tmp_path / "dispatcher.log", *args)
        started.append(process)
        return process

    yield start
    stop_processes(started, grace=20)
