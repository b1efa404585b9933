"""Fixtures shared across the test suite."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from testlib.dashboard import Dashboard, serve
from testlib.studies import TINY_GRID, TINY_SEEDS, tiny_study_overrides

from backend import migrate
from backend.db import Database
from backend.settings import Settings
from trainer.data.commands import add_data_commands
from trainer.data.demo import write_demo_dataset
from trainer.forked import ForkServerProcess
from trainer.models.weights import IMAGENET1K_V1_URLS, cached_weights

# Session fixtures that take a minute to build: the tiny study trained by real workers, the browser tests'
# dashboard with its finished runs. Under pytest-xdist each worker builds its own, so the files that use
# them run on one worker together (ONE_WORKER_FILES, checked at collection against who really uses them).
SLOW_SESSION_FIXTURES = {"study_server", "tiny_study", "dashboard"}
ONE_WORKER_FILES = {
    "tests/backend/test_effects_end_to_end.py",
    "tests/backend/test_study_end_to_end.py",
    "tests/frontend/",
}


def _on_one_worker(nodeid: str) -> bool:
    path = nodeid.split("::", 1)[0]
    return any(path == entry or (entry.endswith("/") and path.startswith(entry)) for entry in ONE_WORKER_FILES)


ONE_WORKER_UNIT = "slow session fixtures"
# Seconds each unit takes on one core (a quiet 2-core run, rounded): the scheduler hands out the longest
# first, so that no long file is left to run alone at the end while the other cores idle. A unit not
# named here counts a second a test; a wrong figure costs balance, never a test.
UNIT_SECONDS = {
    ONE_WORKER_UNIT: 230,  # the sweep pages' end-to-end sweep: 30 of them
    "tests/bench/test_bench_smoke.py": 80,
    # Mostly waiting on the real Slurm (a time limit is enforced about once a minute, three trainer starts):
    # started first, they overlap the others.
    "tests/backend/test_slurm_endings.py": 150,
    "tests/backend/test_slurm_node_ends.py": 90,  # with a run on two nodes and its reference on one process
    "tests/backend/test_slurm.py": 30,
    "tests/bench/test_gpu_check_smoke.py": 60,
    "tests/backend/test_worker_distributed.py": 55,
    "tests/trainer/test_distributed.py": 28,
    "tests/trainer/test_sync_batchnorm.py": 17,
    "tests/trainer/test_warning_resume.py": 45,
    "tests/backend/api/test_api_reports.py": 40,
    "tests/backend/api/test_api_fuzz.py": 40,
    "tests/trainer/test_run.py": 35,
    "tests/client/test_client.py": 35,
    "tests/backend/test_worker.py": 30,
    "tests/trainer/test_lr_range.py": 30,
    "tests/backend/api/test_api_run_files.py": 30,
    "tests/backend/test_run_end_to_end.py": 27,
    "tests/backend/api/test_api_organise.py": 27,
    "tests/backend/test_cli_tokens.py": 25,
    "tests/backend/test_machine_faults.py": 22,
    "tests/backend/test_lr_range_end_to_end.py": 17,
    "tests/backend/services/test_sweep_controller.py": 12,
    "tests/backend/services/test_sweep_controller_lifecycle.py": 13,
    "tests/backend/test_sweep_workers.py": 20,
    "tests/backend/test_sweep_restart.py": 30,  # two servers started per database, one killed mid-sweep
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Files scheduled one by one (``--dist loadfile``), ONE_WORKER_FILES as one unit, longest first."""
    from xdist.scheduler import LoadFileScheduling

    class LongestFirst(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return ONE_WORKER_UNIT if _on_one_worker(nodeid) else super()._split_scope(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            longest = max(self.workqueue, key=lambda unit: UNIT_SECONDS.get(unit, len(self.workqueue[unit])))
            self.workqueue.move_to_end(longest, last=False)
            super()._assign_work_unit(node)

    return LongestFirst(config, log) if config.getoption("dist") == "loadfile" else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    strays = sorted(
        {
            item.nodeid.split("::", 1)[0]
            for item in items
            if SLOW_SESSION_FIXTURES & set(getattr(item, "fixturenames", ())) and not _on_one_worker(item.nodeid)
        }
    )
    if strays:
        raise pytest.UsageError(
            f"{', '.join(strays)} use(s) {', '.join(sorted(SLOW_SESSION_FIXTURES))}: add them to ONE_WORKER_FILES "
            "in tests/conftest.py, or each pytest-xdist worker builds those fixtures again"
        )


@pytest.fixture(scope="session", autouse=True)
def imagenet_weights_listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A torchvision cache listing every ResNet's ImageNet weights, for the servers and workers this
    session starts too: a run is queued only when its weights can be had (``backend.services.weights``),
    and the tests queue the default pretrained ResNet50 without a network. Only the files' presence is
    checked at queueing; every run the tests train starts from scratch, so none is read. A test of
    missing weights points TORCH_HOME elsewhere (monkeypatch)."""
    home = tmp_path_factory.mktemp("torch-home")
    before = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)
    for arch in IMAGENET1K_V1_URLS:
        cached_weights(arch).parent.mkdir(parents=True, exist_ok=True)
        cached_weights(arch).touch()
    yield home
    if before is None:
        os.environ.pop("TORCH_HOME", None)
    else:
        os.environ["TORCH_HOME"] = before


FORK_SERVER_ENV = "TRICKLAB_FORK_SERVER"


@pytest.fixture(scope="session", autouse=True)
def session_fork_server(
    tmp_path_factory: pytest.TempPathFactory, imagenet_weights_listed: Path
) -> Iterator[ForkServerProcess]:
    """One trainer fork server per test process, named to every worker this session starts
    (TRICKLAB_FORK_SERVER): each trainer child starts with PyTorch imported, seconds of CPU less each.
    Not waited for: a trainer launched while it still imports is exec'd, as a worker does then.
    tests/trainer/test_fork_server.py holds it to the exec'd trainer; tests of the exec path set "off"."""
    server = ForkServerProcess(tmp_path_factory.mktemp("fork-server"))
    before = os.environ.get(FORK_SERVER_ENV)
    os.environ[FORK_SERVER_ENV] = str(server.socket_path)
    yield server
    server.stop()
    if before is None:
        os.environ.pop(FORK_SERVER_ENV, None)
    else:
        os.environ[FORK_SERVER_ENV] = before


@pytest.fixture(scope="session")
def trainer_fork_server(session_fork_server: ForkServerProcess) -> Path:
    """The session's fork server, listening: its socket."""
    if not session_fork_server.ready():
        pytest.fail("the trainer fork server did not start (python -m trainer.fork_server)")
    return session_fork_server.socket_path


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a tiny generated CUB_200_2011/ (4 classes x 12 images, 40 px short side).

    Shared by the whole session: copy it before changing anything in it.
    """
    parent = tmp_path_factory.mktemp("demo-dataset")
    write_demo_dataset(parent, classes=4, per_class=12, size=40, seed=0)
    return parent


@pytest.fixture
def data_cli():
    """Run ``tricklab data ...`` arguments through a parser built as the top-level CLI builds it."""

    def run(*argv: str) -> int:
        parser = argparse.ArgumentParser(prog="tricklab")
        add_data_commands(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["data", *argv])
        return args.handler(args)

    return run


POSTGRES_ENV = "TRICKLAB_TEST_POSTGRES_URL"


class PostgresDatabases:
    """The tests' PostgreSQL databases, one per test, made over one admin connection pool and dropped on a
    thread of their own: a DROP DATABASE waits for a checkpoint, and the next test need not wait with it."""

    def __init__(self, admin_url: str):
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self._drops = ThreadPoolExecutor(max_workers=1)
        self._dropping: list[Future[None]] = []

    def database(self, template: str | None = None) -> Iterator[str]:
        """A database of its own, empty or a copy of ``template``, for as long as the caller holds it."""
        name = f"tricklab_test_{secrets.token_hex(6)}"
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        yield make_url(self.admin.url).set(database=name).render_as_string(hide_password=False)
        self._dropping.append(self._drops.submit(self._drop, name))

    def _drop(self, name: str) -> None:
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Every database dropped, and a failed drop raised."""
        self._drops.shutdown(wait=True)
        self.admin.dispose()
        for future in self._dropping:
            future.result()


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set in CI; scripts/test starts PostgreSQL and sets it")
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests need a server (scripts/test starts one)")
    databases = PostgresDatabases(Settings(database_url=admin_url).database_url)
    yield databases
    databases.close()


def _migrated(url: str) -> None:
    database = Database(url)
    try:
        migrate.upgrade(database)
    finally:
        database.dispose()


# The migrations run once per test process into these templates, and each test's database is a copy: running
# them took most of a database test's setup. tests/backend/test_migrations.py runs them on empty databases.
@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("migrated-template") / "tricklab.db"
    _migrated(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def migrated_postgres_template(postgres_databases: PostgresDatabases) -> Iterator[str]:
    for url in postgres_databases.database():
        _migrated(url)
        yield str(make_url(url).database)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database of each kind, its schema at the newest migration."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
    else:
        template = request.getfixturevalue("migrated_postgres_template")
        yield from request.getfixturevalue("postgres_databases").database(template=template)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/tricklab.db"
    else:
        yield from request.getfixturevalue("postgres_databases").database()


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases) -> Iterator[str]:
    yield from postgres_databases.database()


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite_template: Path) -> str:
    """A fresh SQLite database, its schema at the newest migration (a copy of the template: running the
    migrations takes a quarter of a second, and the servers, workers and apps of these tests start on it)."""
    shutil.copyfile(migrated_sqlite_template, tmp_path / "tricklab.db")
    return f"sqlite:///{tmp_path}/tricklab.db"


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A data root holding an (empty) CUB_200_2011/: enough for the checks made when runs are queued."""
    root = tmp_path / "data"
    (root / "CUB_200_2011").mkdir(parents=True)
    return root


@pytest.fixture(scope="session")
def slurm_cluster() -> str:
    """A real single-host Slurm (scripts/slurm: munged, slurmctld, slurmd), one per session; its slurm.conf."""
    from testlib.slurm import start_slurm

    return start_slurm()


@pytest.fixture(scope="session")
def study_server(
    tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path, trainer_fork_server: Path
) -> Iterator[Dashboard]:
    """`tricklab serve --workers 2`: two real worker processes, each training in a trainer child (forked: the
    study's first runs would otherwise start while the session's fork server still imports)."""
    with serve(tmp_path_factory.mktemp("study-server"), demo_dataset, workers=2, poll_seconds=0.3) as running:
        yield running


@pytest.fixture(scope="session")
def tiny_study(study_server: Dashboard) -> dict[str, Any]:
    """A grid study that trains in minutes (test_resnet students, resnet18 teachers, 32 px, 1 epoch, 2 seeds,
    2 switches), run to the end; shared by the end-to-end test of studies and the study pages' browser tests."""
    study = study_server.post_study(
        {
            "name": "tiny grid",
            "grid": {"switches": TINY_GRID},
            "seeds": TINY_SEEDS,
            "overrides": tiny_study_overrides(study_server.data_root),
        }
    )
    return study_server.wait_finished(study["id"], timeout=900)
