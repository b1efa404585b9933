"""A database that cannot be written, mid-service and from the start: writes get a 503 that says so,
reads keep working, and the server recovers by itself once the file is writable again. A PostgreSQL
server stopped mid-run: every request gets a 503, the worker trains on, and nothing is lost.

The fault is the immutable flag (``chattr +i``) on the SQLite file and its write-ahead log, which even
root cannot write through: the state a full disk or a read-only mount leaves; and a PostgreSQL cluster
of the test's own, stopped and started (the shared one serves the other tests meanwhile). A SQLite file
that another process holds locked past the busy timeout: writes get a 503, reads and previews go on.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from testlib.events import read_events
from testlib.models import TINY_ARCH

from backend import migrate
from backend.db import Database
from backend.settings import default_trainer_command
from tricklab.local import free_port, wait_for


def _chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture
def immutable(tmp_path: Path):
    """``immutable(*paths)``: a context in which the files cannot be written; skipped where chattr cannot."""
    probe = tmp_path / "probe"
    probe.touch()
    try:
        if shutil.which("chattr") is None:
            raise OSError("no chattr")
        _chattr("+i", probe)
        _chattr("-i", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the immutable flag is not available here (root on ext4 or similar is needed): {exc}")

    @contextmanager
    def frozen(*paths: Path) -> Iterator[None]:
        present = [path for path in paths if path.exists()]
        _chattr("+i", *present)
        try:
            yield
        finally:
            _chattr("-i", *present)

    return frozen


def _files(url: str) -> tuple[Path, Path]:
    database = Path(make_url(url).database or "")
    return database, database.with_name(database.name + "-wal")


def _create(url: str, data_root: Path, name: str) -> httpx.Response:
    body = {"config": {"name": name, "data": {"root": str(data_root)}}}
    return httpx.post(f"{url}/api/v1/runs", json=body, timeout=30)


def _assert_unwritable_then_recovered(base: str, data_root: Path, frozen, files, *, runs_before: int) -> None:
    with frozen(*files):
        refused = _create(base, data_root, "while frozen")
        assert refused.status_code == 503, refused.text
        assert "cannot be written" in refused.json()["detail"] and "nothing was changed" in refused.json()["detail"]
        assert refused.headers["Retry-After"] == "1"
        listed = httpx.get(f"{base}/api/v1/runs", timeout=30)
        assert listed.status_code == 200 and listed.json()["count"] == runs_before
        assert httpx.post(f"{base}/api/v1/runs/1/cancel", timeout=30).status_code == 503
    recovered = _create(base, data_root, "after")
    assert recovered.status_code == 201, recovered.text
    names = [run["name"] for run in httpx.get(f"{base}/api/v1/runs", timeout=30).json()["data"]]
    assert "after" in names and "while frozen" not in names


def test_a_database_that_becomes_unwritable_mid_service(immutable, make_settings, sqlite_url, data_root, live_server):
    settings = make_settings(sqlite_url)
    base = live_server(settings)
    assert _create(base, data_root, "before").status_code == 201
    _assert_unwritable_then_recovered(base, data_root, immutable, _files(sqlite_url), runs_before=1)


def test_a_database_unwritable_from_the_start(immutable, make_settings, sqlite_url, data_root, live_server):
    settings = make_settings(sqlite_url)
    database = Database(settings.database_url)
    migrate.upgrade(database)
    database.dispose()  # the last connection closes: the write-ahead log is folded in and removed
    database_file, _wal = _files(sqlite_url)
    with immutable(database_file):
        base = live_server(settings)  # starts: the schema is at head, so starting writes nothing
        refused = _create(base, data_root, "while frozen")
        assert refused.status_code == 503, refused.text
        listed = httpx.get(f"{base}/api/v1/runs", timeout=30)
        assert listed.status_code == 200 and listed.json()["count"] == 0
    recovered = _create(base, data_root, "after")
    assert recovered.status_code == 201, recovered.text


def test_sqlite_locked_past_its_busy_timeout_answers_503_and_reads_go_on(
    make_settings, sqlite_url, data_root, live_server, caplog
):
    busy_timeout = 1.0
    settings = make_settings(sqlite_url, sqlite_busy_timeout_seconds=busy_timeout)
    base = live_server(settings)
    logging.getLogger("uvicorn").addHandler(caplog.handler)
    assert _create(base, data_root, "before").status_code == 201
    tryout = {"model.arch": "resnet18", "model.pretrained": False, "data.root": str(data_root)}
    study = {"name": "try", "preset": "seed", "seeds": 1, "overrides": tryout}
    config = {"model": {"arch": "resnet18", "pretrained": False}, "data": {"root": str(data_root)}}
    # Another process (a backup, a script, `sqlite3` at a prompt) takes the write lock and keeps it.
    holder = sqlite3.connect(_files(sqlite_url)[0], isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    locked_at = time.monotonic()
    caplog.clear()
    try:
        for method, path in [("POST", "/api/v1/runs"), ("POST", "/api/v1/runs/1/cancel"), ("DELETE", "/api/v1/runs/1")]:
            body = {"config": {**config, "name": "while locked"}} if path == "/api/v1/runs" else None
            refused = httpx.request(method, f"{base}{path}", json=body, timeout=30)
            assert refused.status_code == 503, (method, path, refused.text)
            assert refused.headers["Retry-After"] == "1"
            assert refused.json()["detail"] == (
                "the database cannot be written right now (database is locked); nothing was changed; try again shortly"
            )
        # A page's own write (the log-in form) says so in place of the page.
        page = httpx.post(f"{base}/login", data={"token": "tl_not_a_token", "next": "/"}, timeout=30)
        assert page.status_code == 503 and page.headers["Retry-After"] == "1"
        assert "the database is unreachable right now (database is locked)" in page.text.lower()
        # WAL lets readers past a writer's lock: the lists, the pages and the previews (POSTs that
        # write nothing) answer as before.
        listed = httpx.get(f"{base}/api/v1/runs", timeout=30)
        assert listed.status_code == 200 and [run["name"] for run in listed.json()["data"]] == ["before"]
        assert httpx.get(f"{base}/api/v1/workers", timeout=30).status_code == 200
        run_page = httpx.get(f"{base}/runs/1", timeout=30)
        assert run_page.status_code == 200 and "before" in run_page.text
        previewed = httpx.post(f"{base}/api/v1/studies/preview", json=study, timeout=30)
        assert previewed.status_code == 200, previewed.text
        schedule = httpx.post(f"{base}/api/v1/schedule/preview", json={"config": config}, timeout=30)
        assert schedule.status_code == 200, schedule.text
        assert time.monotonic() - locked_at > 3 * busy_timeout  # held well past the timeout throughout
        assert not [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR]
        assert any("database is locked" in record.getMessage() for record in caplog.records)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _create(base, data_root, "after").status_code == 201
    names = [run["name"] for run in httpx.get(f"{base}/api/v1/runs", timeout=30).json()["data"]]
    assert sorted(names) == ["after", "before"]


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of this module's own (``pg_createcluster``), which a test may stop and start."""

    version: str
    name: str
    url: str

    def stop(self) -> None:
        subprocess.run(["pg_ctlcluster", self.version, self.name, "stop", "-m", "fast"], check=True)

    def start(self) -> None:
        subprocess.run(["pg_ctlcluster", self.version, self.name, "start"], check=True)


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivateCluster]:
    if os.geteuid() != 0 or shutil.which("pg_createcluster") is None or shutil.which("pg_lsclusters") is None:
        pytest.skip("a PostgreSQL cluster of the test's own needs root and Debian's postgresql-common")
    version = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True)
    version_number = version.stdout.split()[0]
    name = f"tricklab_faults_{secrets.token_hex(4)}"
    port = free_port()
    # In PostgreSQL's own folder (the postgres user cannot enter pytest's), trusting loopback: a throwaway
    # cluster that lives as long as this module's tests.
    create = ["pg_createcluster", version_number, name, "-p", str(port), "--"]
    subprocess.run([*create, "--auth-host=trust", "--auth-local=trust"], check=True, capture_output=True)
    try:
        cluster = PrivateCluster(version_number, name, f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres")
        cluster.start()
        admin = create_engine(cluster.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql("CREATE DATABASE tricklab")
        admin.dispose()
        cluster.url = cluster.url.rsplit("/", 1)[0] + "/tricklab"
        yield cluster
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version_number, name], check=False, capture_output=True)


def _epochs_trained(run_dir: Path) -> int:
    """The epochs the trainer itself has written down (its own file, not the database)."""
    metrics = run_dir / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def test_postgres_stopped_mid_run_answers_503_and_the_run_finishes_with_each_epoch_once(
    private_postgres, make_settings, demo_dataset, live_server, start_worker, caplog
):
    settings = make_settings(private_postgres.url, data_roots=[demo_dataset], trainer_command=default_trainer_command())
    base = live_server(settings)
    # uvicorn's own logger does not propagate: its "Exception in ASGI application" would escape caplog.
    logging.getLogger("uvicorn").addHandler(caplog.handler)
    epochs = 40  # a forked trainer starts at once: enough epochs that the outage lands mid-run
    config = {
        "model": {"arch": TINY_ARCH, "pretrained": False},
        "epochs": epochs,
        "batch_size": 16,
        "data": {"image_size": 32, "num_workers": 0, "root": str(demo_dataset)},
    }
    run = httpx.post(f"{base}/api/v1/runs", json={"config": config}, timeout=30).json()
    run_dir = settings.run_dir(run["id"])
    start_worker(settings)
    # Stopped as soon as the run is claimed: its epochs take a fraction of a second each.
    wait_for(
        lambda: httpx.get(f"{base}/api/v1/runs/{run['id']}", timeout=30).json()["status"] == "running",
        timeout=60,
        what="the worker to claim the run",
        interval=0.05,
    )
    # A page's live stream, open through the outage: it waits the database out and carries on.
    stream = ExitStack()
    live = stream.enter_context(
        httpx.stream("GET", f"{base}/api/v1/runs/{run['id']}/events", timeout=httpx.Timeout(10, read=300))
    )
    private_postgres.stop()
    try:
        trained_before = _epochs_trained(run_dir)
        if trained_before == epochs:
            pytest.fail("the run finished before the database stopped; the test needs more epochs")
        caplog.clear()
        for method, path in [
            ("GET", "/api/v1/runs"),
            ("GET", f"/api/v1/runs/{run['id']}"),
            ("GET", f"/api/v1/runs/{run['id']}/metrics"),
            ("GET", "/api/v1/workers"),
            ("GET", "/api/v1/studies"),
            ("POST", f"/api/v1/runs/{run['id']}/cancel"),
            ("POST", "/api/v1/runs"),
        ]:
            body = {"config": config} if path == "/api/v1/runs" and method == "POST" else None
            answer = httpx.request(method, f"{base}{path}", json=body, timeout=30)
            assert answer.status_code == 503, (method, path, answer.text)
            assert answer.headers["Retry-After"] == "1"
            assert "try again shortly" in answer.json()["detail"]
        page = httpx.get(f"{base}/runs/{run['id']}", timeout=30)
        assert page.status_code == 503 and page.headers["Retry-After"] == "1"
        assert "the database is unreachable" in page.text.lower()
        assert not [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR]
        assert any("database unavailable" in record.getMessage() for record in caplog.records)
        # The worker trains on while the database is away: its trainer writes the next epoch down.
        wait_for(lambda: _epochs_trained(run_dir) > trained_before, timeout=120, what="an epoch during the outage")
    finally:
        private_postgres.start()
    final = wait_for(
        lambda: (
            (answer := httpx.get(f"{base}/api/v1/runs/{run['id']}", timeout=30).json())["status"]
            in ("succeeded", "failed", "cancelled")
            and answer
        ),
        timeout=240,
        what="the run to finish",
    )
    assert final["status"] == "succeeded", final["error"]
    with stream:
        streamed = read_events(live.iter_lines())
    assert [data["epoch"] for kind, _, data in streamed if kind == "epoch"] == list(range(1, epochs + 1))
    assert streamed[-1][0] == "end"
    metrics = httpx.get(f"{base}/api/v1/runs/{run['id']}/metrics", timeout=30).json()
    assert [row["epoch"] for row in metrics["data"]] == list(range(1, epochs + 1))
    assert [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == list(
        range(1, epochs + 1)
    )
