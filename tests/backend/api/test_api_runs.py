"""The runs API against a real SQLite file: submitting (defaults, every 422 at its field), the list's
filters, sorts and cursor, and the OpenAPI document. A run's later life: test_api_run_actions.py."""

import urllib.error
import urllib.request
from typing import Any

import pytest
from fastapi.testclient import TestClient
from runs_helpers import submit
from testlib.processes import LOOPBACK

from backend.app import create_app
from backend.services import weights
from trainer.models.weights import cached_weights


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
