"""The worker registry: a real worker process reports itself when it starts and keeps its row fresh
while it waits. Its devices are found in ``backend.worker.devices`` (tests/backend/test_worker_devices.py)."""

from __future__ import annotations

from backend.services import workers
from tricklab.local import wait_for


def test_a_worker_process_reports_itself_and_stays_fresh(make_settings, make_database, sqlite_url, start_worker):
    settings = make_settings(sqlite_url)
    database = make_database(settings)
    start_worker(settings, "--device", "cpu")

    def listed():
        with database.session() as session:
            return workers.list_workers(session=session, stale_after_seconds=settings.stale_after_seconds)

    wait_for(lambda: listed().alive == 1, timeout=60, what="the worker to report itself")
    first = listed().data[0]
    assert first.name.endswith(":cpu") and first.devices[0].kind == "cpu"
    # Idle, it still refreshes its row (every heartbeat), so it stays alive past the stale timeout.
    wait_for(lambda: listed().data[0].last_seen_at > first.last_seen_at, timeout=30, what="a fresher report")
    assert listed().gpus == 0
