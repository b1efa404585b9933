"""The REST API against a real SQLite file: shapes, filters and every 404 / 409 / 422."""

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from testlib.processes import LOOPBACK

from backend.app import create_app
from backend.models import EpochMetric, FailureKind
from backend.schemas.metrics import EpochMetricPublic
from backend.services import queue as jobs
from backend.services import weights
from trainer.models.weights import cached_weights
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


def submit(client, data_root, **config):
    config.setdefault("data", {"root": str(data_root)})
    response = client.post("/api/v1/runs", json={"config": config})
    assert response.status_code == 201, response.text
    return response.json()


def claim(db):
    with db.session(write=True) as session:
        return jobs.claim_run(session=session, worker="test", stale_after_seconds=60)


def test_submit_fills_defaults_and_returns_the_run(client, data_root, settings):
    response = client.post(
        "/api/v1/runs", json={"config": {"name": "base", "epochs": 3, "data": {"root": str(data_root)}}, "priority": 2}
    )
    assert response.status_code == 201
    run = response.json()
    assert run["status"] == "queued" and run["priority"] == 2 and run["name"] == "base"
    assert run["config"]["model"]["arch"] == "resnet50" and run["config"]["batch_size"] == 64
    assert (run["epoch"], run["epochs"], run["attempt"], run["max_attempts"]) == (0, 3, 0, 1)
    assert run["run_dir"] == str(settings.runs_dir / str(run["id"]))
    assert len(run["config_hash"]) == 16 and run["seconds_per_epoch"] is None
    for key in (
        "depends_on",
        "study_id",
        "worker",
        "failure_kind",
        "error",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "test_top1",
        "test_top5",
        "checkpoint_epoch",
        "checkpoint_valid_top1",
        "checkpoint_valid_top5",
        "peak_epoch",
        "peak_valid_top1",
        "peak_valid_top5",
    ):
        assert run[key] is None, key
    assert client.get(f"/api/v1/runs/{run['id']}").json() == run


def test_a_relative_data_root_resolves_against_the_working_folder(client, data_root, monkeypatch):
    monkeypatch.chdir(data_root.parent)
    run = submit(client, data_root, data={"root": "data"})
    assert run["config"]["data"]["root"] == str(data_root)


@pytest.mark.parametrize(
    ("config", "loc", "message"),
    [
        ({"epochs": 0}, ["epochs"], "greater than or equal to 1"),
        ({"optim": {"lrr": 1}}, ["optim", "lrr"], "unknown key"),
        ({"model": {"arch": "vgg"}}, ["model", "arch"], "resnet18"),
        ({"schedule": {"name": "onecycle", "warmup_epochs": 1}}, ["schedule", "warmup_epochs"], "OneCycle"),
        ({"data": {"root": "/etc"}}, ["data", "root"], "outside the data roots"),
        ({"data": {"root": "{data_root}/missing"}}, ["data", "root"], "does not exist"),
        (
            {"data": {"root": "{data_root}/CUB_200_2011/.."}, "tricks": {"kd": {"teacher": 41}}},
            ["tricks", "kd", "teacher"],
            "run 41 not found",
        ),
        ({"tricks": {"kd": {"teacher": 2**40}}}, ["tricks", "kd", "teacher"], "run ids run from 1 to 2147483647"),
        (
            {"tricks": {"kd": {"teacher": "/tmp"}}},
            ["tricks", "kd", "teacher"],
            "outside the data roots and the runs folder",
        ),
    ],
)
def test_bad_configs_are_422_at_the_field(client, data_root, config, loc, message):
    config = {"data": {"root": str(data_root)}, **config}
    config["data"]["root"] = config["data"]["root"].replace("{data_root}", str(data_root))
    response = client.post("/api/v1/runs", json={"config": config})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "config", *loc]
    assert message in error["msg"]


def test_a_folder_without_the_dataset_is_refused(client, data_root):
    (data_root / "empty").mkdir()
    response = client.post("/api/v1/runs", json={"config": {"data": {"root": str(data_root / "empty")}}})
    assert response.status_code == 422 and "CUB_200_2011" in response.json()["detail"][0]["msg"]


def test_malformed_bodies_are_422_in_fastapi_shape(client):
    for body in ({"config": {}, "priority": "high"}, {"config": [1]}, {"config": {}, "extra": 1}):
        response = client.post("/api/v1/runs", json=body)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][0] == "body"
    assert client.post("/api/v1/runs", content=b"{", headers={"content-type": "application/json"}).status_code == 422


def test_a_teacher_by_id_becomes_a_dependency(client, data_root, db):
    teacher = submit(client, data_root, name="teacher")
    student = submit(client, data_root, name="student", tricks={"kd": {"teacher": teacher["id"]}})
    assert student["depends_on"] == teacher["id"]
    as_text = submit(client, data_root, tricks={"kd": {"teacher": str(teacher["id"])}})  # a form sends text
    assert as_text["depends_on"] == teacher["id"]

    client.post(f"/api/v1/runs/{teacher['id']}/cancel")
    response = client.post(
        "/api/v1/runs",
        json={"config": {"data": {"root": str(data_root)}, "tricks": {"kd": {"teacher": teacher["id"]}}}},
    )
    assert response.status_code == 422 and "cancelled; retry it first" in response.json()["detail"][0]["msg"]


def test_list_filters_by_status_and_name_and_paginates(client, data_root, db):
    ids = [submit(client, data_root, name=name)["id"] for name in ("base", "base_ls", "cosine", "base-kd")]
    client.post(f"/api/v1/runs/{ids[2]}/cancel")
    page = client.get("/api/v1/runs", params={"limit": 2}).json()
    assert page["count"] == 4 and [r["id"] for r in page["data"]] == ids[::-1][:2]  # newest first
    assert client.get("/api/v1/runs", params={"skip": 3}).json()["data"][0]["id"] == ids[0]
    assert [r["name"] for r in client.get("/api/v1/runs", params={"name": "BASE_"}).json()["data"]] == ["base_ls"]
    cancelled = client.get("/api/v1/runs", params={"status": "cancelled"}).json()
    assert cancelled["count"] == 1 and cancelled["data"][0]["id"] == ids[2]
    both = client.get("/api/v1/runs", params=[("status", "cancelled"), ("status", "queued")]).json()
    assert both["count"] == 4
    assert client.get("/api/v1/runs", params={"status": "done"}).status_code == 422
    assert client.get("/api/v1/runs", params={"limit": 0}).status_code == 422


def test_list_filters_with_the_language_sorts_and_pages_by_cursor(client, data_root, db):
    names = ("cosine-a", "cosine-b", "step", "mixup")
    configs: list[dict[str, Any]] = [
        {"name": "cosine-a", "seed": 1, "schedule": {"name": "cosine"}},
        {"name": "cosine-b", "seed": 2, "schedule": {"name": "cosine"}},
        {"name": "step", "schedule": {"name": "constant"}},
        {"name": "mixup", "tricks": {"mixup_alpha": 0.2}},
    ]
    ids = [submit(client, data_root, **config)["id"] for config in configs]
    client.post(f"/api/v1/runs/{ids[2]}/cancel")
    text = 'config.tricks.mixup_alpha > 0 or (name ilike "%COSINE%" and not status = "cancelled")'
    found = client.get("/api/v1/runs", params={"filter": text, "sort": "name"}).json()
    assert [run["name"] for run in found["data"]] == ["cosine-a", "cosine-b", "mixup"] and found["count"] == 3
    # The language and the plain parameters together.
    both = client.get("/api/v1/runs", params={"filter": 'name like "cos%"', "name": "-b"}).json()
    assert [run["name"] for run in both["data"]] == ["cosine-b"]
    pages, cursor = [], None
    while True:
        page = client.get(
            "/api/v1/runs", params={"sort": "-name", "limit": 3, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200, page.text
        pages += [run["name"] for run in page.json()["data"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == sorted(names, reverse=True)
    groups = client.get("/api/v1/run-groups", params={"filter": 'name like "cosine%"'}).json()
    assert groups["count"] == 1 and groups["data"][0]["count"] == 2 and sorted(groups["data"][0]["seeds"]) == [1, 2]
    assert groups["data"][0]["peak_valid_top1"] == {"n": 0, "mean": None, "std": None}


@pytest.mark.parametrize(
    ("params", "loc", "message"),
    [
        ({"filter": "peak.valid_top1 >"}, ["query", "filter"], "ends too soon"),
        ({"filter": "status = = 1"}, ["query", "filter"], "column 10"),
        ({"filter": "best.valid_top1 > 80"}, ["query", "filter"], "unknown field"),
        ({"filter": "peak.valid_top1 > NaN"}, ["query", "filter"], "unexpected 'NaN'"),
        ({"filter": "tag > 3"}, ["query", "filter"], "tag compares with a quoted string"),
        ({"archived": "maybe"}, ["query", "archived"], "'false', 'true' or 'any'"),
        ({"filter": "x" * 2001}, ["query", "filter"], "2000"),
        ({"filter": "not " * 40 + "id = 1"}, ["query", "filter"], "levels"),
        ({"sort": "config.seed"}, ["query", "sort"], "pattern"),
        ({"cursor": "nonsense"}, ["query", "cursor"], "not a cursor"),
    ],
)
def test_a_bad_filter_sort_or_cursor_is_a_422_naming_it(client, params, loc, message):
    response = client.get("/api/v1/runs", params=params)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == loc and message in error["msg"]


def test_sql_in_a_filter_string_is_a_string(client, data_root):
    submit(client, data_root, name="plain")
    hostile = "name = \"x' OR 1=1; DROP TABLE runs; --\" or config.name = 'a\\' OR 1=1 --'"
    response = client.get("/api/v1/runs", params={"filter": hostile})
    assert response.status_code == 200 and response.json()["count"] == 0
    assert client.get("/api/v1/runs").json()["count"] == 1


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


def test_openapi_documents_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/runs",
        "/api/v1/runs/{run_id}",
        "/api/v1/runs/{run_id}/metrics",
        "/api/v1/runs/{run_id}/events",
        "/api/v1/runs/{run_id}/cancel",
        "/api/v1/runs/{run_id}/retry",
        "/api/v1/runs/{run_id}/clone",
        "/api/v1/metrics",
    } <= set(paths)
    assert client.get("/docs").status_code == 200


def test_a_pretrained_run_whose_weights_cannot_be_had_is_refused_before_it_is_queued(
    client, data_root, monkeypatch, tmp_path
):
    """Not queued to wait its turn and then fail: refused as a study is, in the same words, at model.pretrained."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty cache

    def offline(*_args, **_kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(weights, "_probes", {})
    config = {"name": "pretrained", "data": {"root": str(data_root)}}  # the default: ResNet50 from ImageNet
    answer = client.post("/api/v1/runs", json={"config": config})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "config", "model", "pretrained"]
    assert error["msg"].startswith("ImageNet weights for resnet50 (resnet50-0676ba61.pth) are not cached")
    assert error["msg"].endswith(" Or train from scratch: model.pretrained = false.")
    assert client.get("/api/v1/runs").json()["count"] == 0
    # From scratch, or with the weights in the cache, it is queued.
    scratch = {**config, "model": {"pretrained": False}}
    assert client.post("/api/v1/runs", json={"config": scratch}).status_code == 201
    cached_weights("resnet50").parent.mkdir(parents=True)
    cached_weights("resnet50").touch()
    assert client.post("/api/v1/runs", json={"config": config}).status_code == 201
