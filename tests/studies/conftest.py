"""Study fixtures: databases for the service, and one real `tricklab serve` (two workers) that runs a
tiny grid study end to end, shared by the end-to-end and browser tests.

PostgreSQL tests need TRICKLAB_TEST_POSTGRES_URL (a role that may CREATEDB).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_testlib import serve
from sqlalchemy import update
from study_testlib import TINY, TINY_GRID, TINY_SEEDS

from backend import migrate
from backend.db import Database
from backend.models import Run, RunStatus, utcnow
from backend.settings import Settings


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """An (empty) CUB_200_2011/: enough for the checks made when runs are queued."""
    root = tmp_path / "data"
    (root / "CUB_200_2011").mkdir(parents=True)
    return root


@dataclass
class Store:
    """A migrated database with the settings the study service needs."""

    settings: Settings
    db: Database
    data_root: Path

    def finish(self, run_ids: list[int], **results: Any) -> None:
        """Mark runs succeeded as a worker would, with the given result columns."""
        with self.db.transaction(write=True) as session:
            session.execute(
                update(Run)
                .where(Run.id.in_(run_ids))
                .values(status=RunStatus.succeeded, finished_at=utcnow(), **results)
            )

    def run(self, run_id: int) -> Run:
        with self.db.session() as session:
            return session.get(Run, run_id)


@pytest.fixture
def make_store(tmp_path: Path, data_root: Path) -> Iterator[Callable[[str], Store]]:
    made: list[Database] = []

    def make(database_url: str) -> Store:
        settings = Settings(database_url=database_url, runs_dir=tmp_path / "runs", data_roots=[data_root])
        db = Database(settings.database_url)
        migrate.upgrade(db)
        made.append(db)
        return Store(settings, db, data_root)

    yield make
    for db in made:
        db.dispose()


@pytest.fixture
def store(make_store: Callable[[str], Store], sqlite_url: str) -> Store:
    return make_store(sqlite_url)


# --- one real server for the end-to-end and browser tests -----------------------------------------


@dataclass
class Server:
    url: str
    data_root: Path
    log: Path

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.url}/api/v1{path}", params=params, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post_study(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = httpx.post(f"{self.url}/api/v1/studies", json=body, timeout=60)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def wait_finished(self, study_id: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not (study := self.get(f"/studies/{study_id}"))["finished"]:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"study {study_id} not finished after {timeout} s: {study['progress']}; server log:\n"
                    + self.log.read_text()[-3000:]
                )
            time.sleep(1)
        return study


@pytest.fixture(scope="session")
def study_server(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path) -> Iterator[Server]:
    """`tricklab serve --workers 2`: two real worker processes, each training in a trainer child."""
    with serve(tmp_path_factory.mktemp("study-server"), demo_dataset, workers=2, poll_seconds=0.3) as running:
        yield Server(running.url, running.data_root, running.log)


@pytest.fixture(scope="session")
def tiny_study(study_server: Server) -> dict[str, Any]:
    """The issue's tiny study: resnet18, 32 px, 1 epoch, 2 seeds, 2 switches; run to the end."""
    study = study_server.post_study(
        {
            "name": "tiny grid",
            "grid": {"switches": TINY_GRID},
            "seeds": TINY_SEEDS,
            "overrides": {**TINY, "data.root": str(study_server.data_root), "teacher.model.arch": "resnet34"},
        }
    )
    return study_server.wait_finished(study["id"], timeout=900)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    tab.on("console", lambda message: message.type == "error" and tab.errors.append(message.text))
    yield tab
    context.close()
