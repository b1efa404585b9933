"""The services' fixtures: a migrated database, its settings, and a worker's results written by hand (the
study service); a migrated database with the sweep controller's settings (the sweep controller).

PostgreSQL tests need TRICKLAB_TEST_POSTGRES_URL (a role that may CREATEDB).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from testlib.sweeps import sweep_settings

from backend import migrate
from backend.db import Database
from backend.models import EpochMetric, Run, RunStatus, utcnow
from backend.services import sweep_optuna, weights
from backend.settings import Settings
from trainer.models.weights import cached_weights


@dataclass
class Store:
    """A migrated database with the settings the study service needs."""

    settings: Settings
    db: Database
    data_root: Path

    def finish(self, run_ids: list[int], *, valid: tuple[float, float] | None = None, **results: Any) -> None:
        """Mark runs succeeded as a worker would, with the given result columns; ``valid`` (top-1,
        top-5) is stored as the runs' one epoch, the peak epoch the tables read."""
        with self.db.transaction(write=True) as session:
            session.execute(
                update(Run)
                .where(Run.id.in_(run_ids))
                .values(status=RunStatus.succeeded, finished_at=utcnow(), **results)
            )
            if valid is not None:
                session.add_all(
                    EpochMetric(run_id=run_id, epoch=1, attempt=1, valid_top1=valid[0], valid_top5=valid[1])
                    for run_id in run_ids
                )

    def run(self, run_id: int) -> Run:
        with self.db.session() as session:
            return session.get_one(Run, run_id)


@pytest.fixture
def make_store(
    make_settings: Callable[..., Settings], make_database: Callable[[Settings], Database]
) -> Callable[[str], Store]:
    def make(database_url: str) -> Store:
        settings = make_settings(database_url)
        return Store(settings, make_database(settings), settings.data_roots[0])

    return make


@pytest.fixture
def store(make_store: Callable[[str], Store], sqlite_url: str) -> Store:
    return make_store(sqlite_url)


@pytest.fixture
def imagenet_cache(tmp_path, monkeypatch):
    """A torchvision cache holding the ResNet50 and ResNet152 weights (their names: only presence is
    checked when a study is queued), and no network: nothing else can be downloaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for arch in ("resnet50", "resnet152"):
        cached_weights(arch).parent.mkdir(parents=True, exist_ok=True)
        cached_weights(arch).touch()

    def offline(*_args, **_kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(weights, "_probes", {})


@pytest.fixture
def world(database_url: str, tmp_path: Path, demo_dataset: Path) -> Iterator[tuple[Database, Settings]]:
    """A migrated database of each kind with the sweep controller's settings; Optuna's cached studies are
    forgotten after it."""
    database = Database(database_url)
    migrate.upgrade(database)
    yield database, sweep_settings(database_url, tmp_path, demo_dataset)
    sweep_optuna.forget(database_url)
    database.dispose()
