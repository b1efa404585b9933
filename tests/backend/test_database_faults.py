"""A database that cannot be written, mid-service and from the start: writes get a 503 that says so,
reads keep working, and the server recovers by itself once the file is writable again.

The fault is the immutable flag (``chattr +i``) on the SQLite file and its write-ahead log, which even
root cannot write through: the state a full disk or a read-only mount leaves.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from backend import migrate
from backend.db import Database


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
