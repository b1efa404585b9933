"""The runs ``bench.runs_filter`` times, written fast and kept between bench runs.

tricklab's runs go straight into its tables, each with its 100 epoch rows, in bulk inserts of 500
runs. MLflow's first run of a size goes through its REST API (so MLflow writes every row it keeps
for a run); the others are its rows cloned with SQL into MLflow's SQLite store, each with its own
params and metric: minutes of REST calls at 10,000 runs become seconds.

A seeded database is kept under ``bench_root()/runs-filter-cache``, keyed by what makes it: the size,
the epochs, ``SEED_VERSION``, and the schema (the text of tricklab's migrations, MLflow's version). A bench run
times a copy of it: a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL (the
template kept as ``bench_runs_filter_cache_<key>``). ``--fresh`` seeds again.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, MetaData, create_engine, insert, make_url, select, text

from backend.db import Database
from backend.migrate import MIGRATIONS, upgrade
from trainer.config import RunConfig

# Bump when what a seeded run holds changes: the caches of the older runs are then not reused.
SEED_VERSION = 1
SCHEDULES, SMOOTHING, MIXUP = ("onecycle", "cosine"), (0.0, 0.1), (0.0, 0.2)
STATUSES = ("succeeded",) * 8 + ("failed", "cancelled")
CHUNK = 500


def run_config(index: int, epochs: int) -> RunConfig:
    schedule = SCHEDULES[index % 2]
    smoothing = SMOOTHING[index // 2 % 2]
    mixup = MIXUP[index // 4 % 2]
    return RunConfig.from_dict(
        {
            "name": f"run {index} {schedule}",
            "seed": index // 8,
            "epochs": epochs,
            "schedule": {"name": schedule},
            "tricks": {"label_smoothing": smoothing, "mixup_alpha": mixup},
        }
    )


def peak(index: int) -> float:
    return 40 + random.Random(index).random() * 45


def _key(*parts: object) -> str:
    return hashlib.sha256(repr((SEED_VERSION, *parts)).encode()).hexdigest()[:12]


def schema_key() -> str:
    """tricklab's schema: the text of its migrations (an edited revision makes other tables too)."""
    versions = sorted(MIGRATIONS.joinpath("versions").glob("*.py"))
    return hashlib.sha256(b"".join(path.read_bytes() for path in versions)).hexdigest()[:12]


# --- tricklab -----------------------------------------------------------------------------------


def seed_tricklab(database_url: str, *, start: int, stop: int, epochs: int) -> None:
    """Runs ``start``..``stop`` with their epoch rows, into a database at tricklab's schema."""
    from backend.reports.compare import configuration_key

    engine = create_engine(database_url)
    tables = MetaData()
    tables.reflect(engine, only=["runs", "epoch_metrics"])
    runs, epoch_rows = tables.tables["runs"], tables.tables["epoch_metrics"]
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        for chunk in range(start, stop, CHUNK):
            with engine.begin() as connection:
                rows = []
                for index in range(chunk, min(chunk + CHUNK, stop)):
                    config = run_config(index, epochs)
                    status = STATUSES[index % len(STATUSES)]
                    done = status == "succeeded"
                    rows.append(
                        {
                            "name": config.name,
                            "kind": "training",
                            "status": status,
                            "priority": 0,
                            "config": config.model_dump(mode="json"),
                            "config_hash": config.fingerprint(),
                            "configuration_hash": configuration_key(config),
                            "attempt": 1,
                            "max_attempts": 1,
                            "training_failures": 0,
                            "infrastructure_failures": 0,
                            "cancel_requested": False,
                            "start_epoch": 0,
                            "created_at": now,
                            "test_top1": peak(index) - 1 if done else None,
                            "peak_valid_top1": peak(index) if done else None,
                            "peak_epoch": epochs if done else None,
                            "checkpoint_epoch": epochs if done else None,
                        }
                    )
                ids = connection.execute(insert(runs).returning(runs.c.id), rows).scalars().all()
                rng = random.Random(chunk)
                connection.execute(
                    insert(epoch_rows),
                    [
                        {
                            "run_id": run_id,
                            "epoch": epoch,
                            "attempt": 1,
                            "created_at": now,
                            **{
                                key: rng.random() * 80
                                for key in ("train_loss", "train_top1", "valid_loss", "valid_top1", "valid_top5")
                            },
                            "seconds": 78 + rng.random(),
                            "images_per_s": 108 + rng.random(),
                        }
                        for run_id in ids
                        for epoch in range(1, epochs + 1)
                    ],
                )
        if engine.dialect.name == "postgresql":
            # What autovacuum does a minute after such a load: the planner's statistics, made now so that
            # every bench run plans alike. SQLite keeps none unless asked (tricklab never asks).
            with engine.connect() as connection:
                connection.execute(text("ANALYZE"))
                connection.commit()
    finally:
        engine.dispose()


class TricklabCache:
    """Seeded tricklab databases of one kind (``sqlite`` or a PostgreSQL server's admin URL)."""

    def __init__(self, root: Path, *, postgres: str | None, epochs: int, fresh: bool):
        self.root, self.postgres, self.epochs, self.fresh = root, postgres, epochs, fresh
        self.kind = "postgresql" if postgres else "sqlite"
        self.root.mkdir(parents=True, exist_ok=True)

    def _prefix(self, size: int) -> str:
        return f"bench_runs_filter_cache_{size}x{self.epochs}_"

    def _name(self, size: int) -> str:
        return self._prefix(size) + _key(self.kind, size, self.epochs, schema_key())

    def _stale(self, size: int) -> list[str]:
        """The caches of this size made for another schema or seed: dropped when a new one is made."""
        if self.postgres:
            admin = self._admin()
            with admin.connect() as connection:
                names = connection.scalars(text("SELECT datname FROM pg_database")).all()
            admin.dispose()
        else:
            names = [path.name.removesuffix(".db") for path in self.root.glob(f"{self._prefix(size)}*.db")]
        return [name for name in names if name.startswith(self._prefix(size)) and name != self._name(size)]

    def _admin(self) -> Engine:
        assert self.postgres
        return create_engine(self.postgres, isolation_level="AUTOCOMMIT")

    def _pg_exists(self, admin: Engine, name: str) -> bool:
        with admin.connect() as connection:
            return bool(connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}))

    def _copy(self, source: str, target: str) -> None:
        if self.postgres:
            admin = self._admin()
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{target}" TEMPLATE "{source}"'))
            admin.dispose()
        else:
            shutil.copyfile(self.root / f"{source}.db", self.root / f"{target}.db")

    def _url(self, name: str) -> str:
        if self.postgres:
            return make_url(self.postgres).set(database=name).render_as_string(hide_password=False)
        return f"sqlite:///{self.root / f'{name}.db'}"

    def _drop(self, name: str) -> None:
        if self.postgres:
            admin = self._admin()
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        else:
            for suffix in ("", "-wal", "-shm", ".migrate-lock"):
                (self.root / f"{name}.db{suffix}").unlink(missing_ok=True)

    def _cached(self, size: int) -> bool:
        name = self._name(size)
        if self.postgres:
            admin = self._admin()
            try:
                return self._pg_exists(admin, name)
            finally:
                admin.dispose()
        return (self.root / f"{name}.db").is_file()

    def ensure(self, size: int, *, smaller: int | None) -> float:
        """The cache at ``size`` (grown from ``smaller``'s where that is kept); seconds spent seeding."""
        name = self._name(size)
        if self.fresh:
            self._drop(name)
            self.fresh = False  # the sizes after the first grow from the fresh one
        elif self._cached(size):
            return 0.0
        began = time.perf_counter()
        for stale in self._stale(size):
            self._drop(stale)
        building = f"{name}_building"
        self._drop(building)
        start = 0
        if smaller is not None and self._cached(smaller):
            self._copy(self._name(smaller), building)
            start = smaller
        elif self.postgres:
            admin = self._admin()
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{building}"'))
            admin.dispose()
        database = Database(self._url(building))
        upgrade(database)
        database.engine.dispose()
        database.write_engine.dispose()
        seed_tricklab(self._url(building), start=start, stop=size, epochs=self.epochs)
        if self.postgres:
            admin = self._admin()
            with admin.connect() as connection:
                connection.execute(text(f'ALTER DATABASE "{building}" RENAME TO "{name}"'))
            admin.dispose()
        else:
            (self.root / f"{building}.db").rename(self.root / f"{name}.db")
            self._drop(building)
        return time.perf_counter() - began

    @contextmanager
    def copy(self, size: int) -> Iterator[str]:
        """A throwaway copy of the cache at ``size``: its URL; dropped afterwards."""
        name = f"bench_runs_filter_{uuid.uuid4().hex[:8]}"
        self._copy(self._name(size), name)
        try:
            yield self._url(name)
        finally:
            self._drop(name)


# --- MLflow -------------------------------------------------------------------------------------


def mlflow_params(index: int) -> dict[str, str]:
    config = run_config(index, 100)
    return {
        "schedule": config.schedule.name,
        "label_smoothing": str(config.tricks.label_smoothing),
        "mixup_alpha": str(config.tricks.mixup_alpha),
        "seed": str(config.seed),
    }


def seed_mlflow_rest(client: httpx.Client, experiment: str, index: int) -> str:
    """Run ``index`` through MLflow's REST API, as a client logs one; its run id."""
    now = int(time.time() * 1000)

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = client.post(f"/api/2.0/mlflow/{path}", json=body)
        if answer.status_code != 200:
            raise SystemExit(f"MLflow: POST {path} answered {answer.status_code}: {answer.text[:500]}")
        return answer.json()

    name = run_config(index, 100).name
    run_id = post("runs/create", {"experiment_id": experiment, "run_name": name, "start_time": now})["run"]["info"][
        "run_id"
    ]
    succeeded = STATUSES[index % len(STATUSES)] == "succeeded"
    metrics = [{"key": "peak_valid_top1", "value": peak(index), "timestamp": now, "step": 100}] if succeeded else []
    params = [{"key": k, "value": v} for k, v in mlflow_params(index).items()]
    post("runs/log-batch", {"run_id": run_id, "params": params, "metrics": metrics})
    post("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": now})
    return run_id


def _clone_rows(table: str, rows: list[dict[str, Any]], index: int, run_id: str, template: str) -> list[dict[str, Any]]:
    """The template run's rows of ``table`` as run ``index``'s (id ``run_id``)."""

    def cloned(row: dict[str, Any], **changes: Any) -> dict[str, Any]:
        out = {k: v.replace(template, run_id) if isinstance(v, str) else v for k, v in row.items()}
        return {**out, **changes}

    if table == "params":
        by_key = {row["key"]: row for row in rows}
        return [cloned(by_key[key], value=value) for key, value in mlflow_params(index).items()]
    if table in ("metrics", "latest_metrics"):
        if STATUSES[index % len(STATUSES)] != "succeeded":
            return []
        return [cloned(row, value=peak(index)) for row in rows]
    name = run_config(index, 100).name
    if table == "runs":
        return [cloned(row, name=name) for row in rows]
    if table == "tags":
        return [cloned(row, value=name) if row["key"] == "mlflow.runName" else cloned(row) for row in rows]
    return [cloned(row) for row in rows]


def seed_mlflow(client: httpx.Client, database: Path, experiment: str, *, start: int, stop: int) -> None:
    """Runs ``start``..``stop``: the first through the REST API, the others its rows cloned by SQL
    into every table of MLflow's store that holds a run's rows."""
    template = seed_mlflow_rest(client, experiment, start)
    engine = create_engine(f"sqlite:///{database}", connect_args={"timeout": 60})
    tables = MetaData()
    tables.reflect(engine)
    per_run = [table for table in tables.sorted_tables if "run_uuid" in table.c]
    with engine.connect() as connection:
        rows = {
            table.name: [
                dict(row._mapping) for row in connection.execute(select(table).where(table.c.run_uuid == template))
            ]
            for table in per_run
        }
    if not rows.get("runs") or not rows.get("params"):
        raise SystemExit(f"MLflow's store holds no rows of run {template}: its schema is not the one expected")
    try:
        for chunk in range(start + 1, stop, CHUNK):
            new: dict[str, list[dict[str, Any]]] = {table.name: [] for table in per_run}
            for index in range(chunk, min(chunk + CHUNK, stop)):
                run_id = uuid.uuid4().hex
                for table in per_run:
                    new[table.name] += _clone_rows(table.name, rows[table.name], index, run_id, template)
            with engine.begin() as connection:
                for table in per_run:  # parents first: runs before the tables that refer to it
                    if new[table.name]:
                        connection.execute(insert(table), new[table.name])
    finally:
        engine.dispose()


def mlflow_version(executable: Path) -> str:
    done = subprocess.run([str(executable), "--version"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


class MlflowCache:
    """Seeded MLflow stores (SQLite files), each built by a server that ``serve(home)`` starts."""

    def __init__(self, root: Path, executable: Path, serve: Callable[[Path], Any], *, fresh: bool):
        self.root, self.serve, self.fresh = root, serve, fresh
        self.version = mlflow_version(executable)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, size: int) -> Path:
        return self.root / f"mlflow_{size}_{_key('mlflow', size, self.version)}.db"

    def ensure(self, size: int, *, smaller: int | None, experiment_name: str) -> float:
        target = self.path(size)
        if self.fresh:
            target.unlink(missing_ok=True)
            self.fresh = False
        elif target.is_file():
            return 0.0
        began = time.perf_counter()
        for stale in self.root.glob(f"mlflow_{size}_*.db"):
            stale.unlink()
        home = self.root / f"building-{uuid.uuid4().hex[:8]}"
        home.mkdir()
        start = 0
        if smaller is not None and self.path(smaller).is_file():
            shutil.copyfile(self.path(smaller), home / "mlflow.db")
            start = smaller
        try:
            with self.serve(home) as url, httpx.Client(base_url=url, timeout=300) as client:
                experiment = experiment_id(client, experiment_name)
                seed_mlflow(client, home / "mlflow.db", experiment, start=start, stop=size)
            (home / "mlflow.db").rename(target)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        return time.perf_counter() - began

    @contextmanager
    def copy(self, size: int, home: Path) -> Iterator[Path]:
        home.mkdir(parents=True)
        shutil.copyfile(self.path(size), home / "mlflow.db")
        yield home


def experiment_id(client: httpx.Client, name: str) -> str:
    """The experiment ``name``, made where the store has none."""
    found = client.get("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name})
    if found.status_code == 200:
        return found.json()["experiment"]["experiment_id"]
    made = client.post("/api/2.0/mlflow/experiments/create", json={"name": name})
    made.raise_for_status()
    return made.json()["experiment_id"]
