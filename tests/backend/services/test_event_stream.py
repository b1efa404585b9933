"""Server-Sent Events from a real uvicorn server while the run's rows are written."""

import threading
import time

import httpx
import pytest
from testlib.events import read_events

from backend.services import queue as jobs
from backend.services import runs as run_service


@pytest.fixture
def setup(make_settings, sqlite_url, live_server, data_root):
    settings = make_settings(sqlite_url)
    url = live_server(settings)
    response = httpx.post(f"{url}/api/v1/runs", json={"config": {"epochs": 3, "data": {"root": str(data_root)}}})
    run = response.json()
    return settings, url, run


def act_as_worker(database, run_id, *, epochs, delay, finish=True):
    """Claim the run and write its epochs slowly, as a worker would."""
    with database.session(write=True) as session:
        claim = jobs.claim_run(session=session, worker="test-worker", stale_after_seconds=60)
    assert claim is not None
    for epoch in range(1, epochs + 1):
        time.sleep(delay)
        with database.session(write=True) as session:
            jobs.store_epoch(
                session=session,
                run_id=run_id,
                attempt=claim.attempt,
                row={"epoch": epoch, "train_loss": 1.0 / epoch, "valid_top1": 10.0 * epoch},
            )
    if finish:
        with database.session(write=True) as session:
            jobs.succeed(session=session, run_id=run_id, attempt=claim.attempt, result={"test_top1": 33.0})


def test_a_client_receives_each_epoch_status_changes_and_the_end(setup, make_database):
    settings, url, run = setup
    database = make_database(settings)
    writer = threading.Thread(target=act_as_worker, args=(database, run["id"]), kwargs={"epochs": 3, "delay": 0.3})
    with httpx.stream("GET", f"{url}/api/v1/runs/{run['id']}/events", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        # The headers can come before the stream reads the run: the worker starts once its first status is in.
        events = read_events(lines, until="status")
        writer.start()
        events += read_events(lines)
    writer.join()
    kinds = [event for event, _, _ in events]
    assert kinds[0] == "status" and events[0][2]["status"] == "queued"
    assert [data["epoch"] for event, _, data in events if event == "epoch"] == [1, 2, 3]
    assert [event_id for event, event_id, _ in events if event == "epoch"] == ["1", "2", "3"]
    statuses = [data["status"] for event, _, data in events if event == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert kinds[-1] == "end" and events[-1][2]["test_top1"] == 33.0 and events[-1][1] == "3"
    epoch_two = next(data for event, _, data in events if event == "epoch" and data["epoch"] == 2)
    assert epoch_two == {**epoch_two, "run_id": run["id"], "train_loss": 0.5, "valid_top1": 20.0}


def test_a_reconnecting_client_resumes_after_last_event_id(setup, make_database):
    settings, url, run = setup
    database = make_database(settings)
    act_as_worker(database, run["id"], epochs=3, delay=0, finish=False)
    with httpx.stream(
        "GET", f"{url}/api/v1/runs/{run['id']}/events", headers={"Last-Event-ID": "2"}, timeout=10
    ) as response:
        lines = response.iter_lines()
        events = read_events(lines, until="status")  # the first status, at once
        assert events[0][0] == "status" and events[0][2]["epoch"] == 3
        with database.session(write=True) as session:
            run_service.cancel_run(session=session, run_id=run["id"])
        events += read_events(lines, until="status")
        assert events[-1][2]["cancel_requested"] is True and events[-1][2]["status"] == "running"
        with database.session(write=True) as session:
            jobs.mark_cancelled(session=session, run_id=run["id"], attempt=1)
        events += read_events(lines)
    assert [data["epoch"] for event, _, data in events if event == "epoch"] == [3]
    assert [event for event, _, _ in events[-2:]] == ["status", "end"]
    assert events[-1][2]["status"] == "cancelled"


def test_a_finished_run_streams_its_rows_and_ends(setup, make_database):
    settings, url, run = setup
    database = make_database(settings)
    act_as_worker(database, run["id"], epochs=2, delay=0)
    started = time.monotonic()
    with httpx.stream("GET", f"{url}/api/v1/runs/{run['id']}/events", timeout=10) as response:
        events = read_events(response.iter_lines())
    assert [event for event, _, _ in events] == ["status", "epoch", "epoch", "end"]
    assert time.monotonic() - started < 2
    assert httpx.get(f"{url}/api/v1/runs/999/events").status_code == 404


def test_a_quiet_stream_sends_keep_alive_comments(make_settings, sqlite_url, live_server, data_root):
    url = live_server(make_settings(sqlite_url, sse_keepalive_seconds=0.3))
    run = httpx.post(f"{url}/api/v1/runs", json={"config": {"data": {"root": str(data_root)}}}).json()
    with httpx.stream("GET", f"{url}/api/v1/runs/{run['id']}/events", timeout=10) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("retry:")) == "retry: 2000"
        assert read_events(lines, until="status")[0][2]["status"] == "queued"
        assert next(line for line in lines if line) == ": keep-alive"
