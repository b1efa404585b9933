"""The runs API against a real SQLite file, after a run is queued: its metrics and progress, cancel,
retry, priority, clone and delete with their 409s, and every 404."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from runs_helpers import claim, submit
from sqlalchemy import select
from testlib.processes import LOOPBACK

from backend.app import create_app
from backend.models import EpochMetric, FailureKind
from backend.schemas.metrics import EpochMetricPublic
from backend.services import queue as jobs
from trainer.protocol import EPOCH_FIELDS


@pytest.fixture
def settings(make_settings, sqlite_url):
    return make_settings(sqlite_url)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), base_url=LOOPBACK) as client:
        yield client


@pytest.fixture
def db(client):
    return client.app.state.database


def test_metrics_steps_and_progress(client, data_root, db):
    run = submit(client, data_root, epochs=4)
    other = submit(client, data_root)
    claimed = claim(db)
    with db.session(write=True) as session:
        for epoch in (1, 2, 3):
            jobs.store_epoch(
                session=session,
                run_id=run["id"],
                attempt=claimed.attempt,
                row={"epoch": epoch, "train_loss": 1.0, "valid_top1": 10.0 * epoch, "seconds": epoch},
            )
        jobs.store_steps(
            session=session,
            run_id=run["id"],
            attempt=claimed.attempt,
            steps=[{"step": 10, "epoch": 1, "loss": 2.0, "lr": 0.01}],
        )
    assert claimed.run_id == run["id"]

    metrics = client.get(f"/api/v1/runs/{run['id']}/metrics", params={"since": 1}).json()
    assert metrics["count"] == 2 and [row["epoch"] for row in metrics["data"]] == [2, 3]
    assert set(metrics["data"][0]) >= {"run_id", "epoch", *EPOCH_FIELDS}
    steps = client.get(f"/api/v1/runs/{run['id']}/steps").json()
    assert steps == {"data": [{"run_id": run["id"], "step": 10, "epoch": 1, "loss": 2.0, "lr": 0.01}], "count": 1}
    detail = client.get(f"/api/v1/runs/{run['id']}").json()
    assert (detail["status"], detail["epoch"], detail["epochs"], detail["seconds_per_epoch"]) == ("running", 3, 4, 2.0)
    assert detail["worker"] == "test" and detail["attempt"] == 1

    both = client.get("/api/v1/metrics", params={"run_ids": f"{other['id']},{run['id']}"}).json()
    assert both["count"] == 3
    # Built from plain columns, the rows are what the response model makes of the stored ones.
    with db.session() as session:
        stored = session.scalars(select(EpochMetric).order_by(EpochMetric.run_id, EpochMetric.epoch)).all()
        assert both["data"] == [EpochMetricPublic.model_validate(row).model_dump(mode="json") for row in stored]
    assert client.get("/api/v1/metrics", params={"run_ids": f"{run['id']}, 998,999"}).json() == {
        "detail": "runs 998, 999 not found"
    }
    for bad in ("", "1,,2", "a", "1;2", "-1", "0", "99999999999", "1" * 4301, "\u00b2", "\u2460", "\u0661", "1,\u0661"):
        response = client.get("/api/v1/metrics", params={"run_ids": bad})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "run_ids"]
        assert "separated by commas" in response.json()["detail"][0]["msg"]
    assert client.get("/api/v1/metrics").status_code == 422
    # Ten digits, past the largest id: no such run.
    assert client.get("/api/v1/metrics", params={"run_ids": "9999999999"}).json() == {
        "detail": "run 9999999999 not found"
    }


def test_unknown_ids_are_404(client):
    for method, path in [
        ("get", "/api/v1/runs/12"),
        ("get", "/api/v1/runs/12/metrics"),
        ("get", "/api/v1/runs/12/steps"),
        ("get", "/api/v1/runs/12/events"),
        ("post", "/api/v1/runs/12/cancel"),
        ("post", "/api/v1/runs/12/retry"),
        ("delete", "/api/v1/runs/12"),
    ]:
        response = client.request(method, path)
        assert (response.status_code, response.json()) == (404, {"detail": "run 12 not found"}), path
    assert client.post("/api/v1/runs/12/clone", json={}).json() == {"detail": "run 12 not found"}
    assert client.get("/api/v1/runs/abc").status_code == 422


def test_cancel_retry_and_their_conflicts(client, data_root, db):
    queued = submit(client, data_root)
    response = client.post(f"/api/v1/runs/{queued['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None
    assert client.post(f"/api/v1/runs/{queued['id']}/cancel").status_code == 409

    retried = client.post(f"/api/v1/runs/{queued['id']}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    assert retried.json()["finished_at"] is None
    response = client.post(f"/api/v1/runs/{queued['id']}/retry")
    assert response.status_code == 409 and "only failed or cancelled" in response.json()["detail"]

    claim(db)
    running = client.post(f"/api/v1/runs/{queued['id']}/cancel").json()
    assert (running["status"], running["cancel_requested"]) == ("running", True)  # the worker stops it
    with db.session(write=True) as session:
        jobs.mark_cancelled(session=session, run_id=queued["id"], attempt=1)
    assert client.get(f"/api/v1/runs/{queued['id']}").json()["status"] == "cancelled"


def test_a_queued_runs_priority_changes_the_claim_order(make_settings, database_url, data_root):
    app = create_app(make_settings(database_url))
    with TestClient(app, base_url=LOOPBACK) as client:
        db = app.state.database
        first, second, third = (submit(client, data_root, name=name)["id"] for name in ("first", "second", "third"))
        moved = client.patch(f"/api/v1/runs/{third}", json={"priority": 5})
        assert moved.status_code == 200, moved.text
        assert (moved.json()["id"], moved.json()["priority"], moved.json()["status"]) == (third, 5, "queued")
        assert client.patch(f"/api/v1/runs/{first}", json={"priority": -1}).json()["priority"] == -1
        assert client.get(f"/api/v1/runs/{third}").json()["priority"] == 5

        # The worker's own claim, on this database: the highest priority first, then the oldest.
        assert [claim(db).run_id for _ in range(3)] == [third, second, first]
        assert claim(db) is None

        started = client.patch(f"/api/v1/runs/{third}", json={"priority": 9})
        assert started.status_code == 409
        assert started.json()["detail"] == f"run {third} is running; only a queued run's priority can change"
        assert client.get(f"/api/v1/runs/{third}").json()["priority"] == 5


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"priority": 1001}, ["body", "priority"]),
        ({"priority": "high"}, ["body", "priority"]),
        ({"priority": True}, ["body", "priority"]),
        ({"priority": 2.5}, ["body", "priority"]),
        ({}, ["body"]),
        ({"priority": 1, "status": "queued"}, ["body", "status"]),
    ],
)
def test_a_bad_priority_is_a_422_and_changes_nothing(client, data_root, body, loc):
    run = submit(client, data_root)
    response = client.patch(f"/api/v1/runs/{run['id']}", json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [loc]
    assert client.get(f"/api/v1/runs/{run['id']}").json()["priority"] == 0


def test_the_priority_of_a_missing_or_finished_run_cannot_change(client, data_root):
    assert client.patch("/api/v1/runs/999", json={"priority": 1}).status_code == 404
    run = submit(client, data_root)
    client.post(f"/api/v1/runs/{run['id']}/cancel")
    response = client.patch(f"/api/v1/runs/{run['id']}", json={"priority": 1})
    assert response.status_code == 409 and "is cancelled" in response.json()["detail"]


def test_retry_of_a_failed_run_clears_the_failure(client, data_root, db):
    run = submit(client, data_root)
    claim(db)
    with db.session(write=True) as session:
        jobs.fail(session=session, run_id=run["id"], attempt=1, error="boom", kind=FailureKind.training)
    failed = client.get(f"/api/v1/runs/{run['id']}").json()
    assert (failed["status"], failed["failure_kind"], failed["error"]) == ("failed", "training", "boom")
    retried = client.post(f"/api/v1/runs/{run['id']}/retry").json()
    assert (retried["status"], retried["failure_kind"], retried["error"], retried["attempt"]) == (
        "queued",
        None,
        None,
        1,
    )


def test_clone_with_dotted_overrides(client, data_root):
    source = submit(client, data_root, name="base", epochs=5)
    response = client.post(f"/api/v1/runs/{source['id']}/clone", json={"overrides": {"tricks.label_smoothing": 0.1}})
    assert response.status_code == 201
    clone = response.json()
    assert clone["config"]["tricks"]["label_smoothing"] == 0.1 and clone["config"]["epochs"] == 5
    assert clone["name"] == "base tricks.label_smoothing=0.1" and clone["id"] != source["id"]
    named = client.post(f"/api/v1/runs/{source['id']}/clone", json={"overrides": {"seed": 2}, "name": "base s2"}).json()
    assert named["name"] == "base s2" and named["config"]["seed"] == 2
    replicate = client.post(f"/api/v1/runs/{source['id']}/clone", json={}).json()
    assert replicate["config_hash"] == source["config_hash"] and replicate["name"] == "base"

    for overrides, key, message in [
        ({"tricks.smoothing": 0.1}, "tricks.smoothing", "unknown key"),
        ({"epochs.x": 1}, "epochs.x", "has no sub-keys"),
        ({"tricks.label_smoothing": 1.5}, "tricks.label_smoothing", "less than 1"),
    ]:
        response = client.post(f"/api/v1/runs/{source['id']}/clone", json={"overrides": overrides})
        assert response.status_code == 422
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "overrides", key] and message in error["msg"]


def test_delete_removes_rows_and_folder_but_not_while_running(client, data_root, db, settings):
    run = submit(client, data_root)
    claim(db)
    with db.session(write=True) as session:
        jobs.store_epoch(session=session, run_id=run["id"], attempt=1, row={"epoch": 1})
    folder = Path(run["run_dir"])
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    response = client.delete(f"/api/v1/runs/{run['id']}")
    assert response.status_code == 409 and "running" in response.json()["detail"]

    with db.session(write=True) as session:
        jobs.succeed(session=session, run_id=run["id"], attempt=1, result={"test_top1": 1.0})
    assert client.delete(f"/api/v1/runs/{run['id']}").status_code == 204
    assert client.get(f"/api/v1/runs/{run['id']}").status_code == 404
    assert not folder.exists()
    with db.session() as session:
        assert session.scalars(select(EpochMetric)).all() == []


def test_a_teacher_of_a_queued_student_cannot_be_deleted(client, data_root):
    teacher = submit(client, data_root)
    student = submit(client, data_root, tricks={"kd": {"teacher": teacher["id"]}})
    client.post(f"/api/v1/runs/{teacher['id']}/cancel")
    response = client.delete(f"/api/v1/runs/{teacher['id']}")
    assert (
        response.status_code == 409
        and f"run {student['id']} (queued) uses run {teacher['id']}" in response.json()["detail"]
    )
