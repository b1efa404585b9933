"""The compare API and the pages' answers for every URL, in-process on a real database: partial
comparisons, the default baseline, one peak epoch for every page, error pages, the offline docs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from testlib.processes import LOOPBACK

from backend.app import create_app
from backend.models import utcnow
from backend.services import queue as jobs
from backend.services import workers
from backend.worker.devices import detect_devices


@pytest.fixture
def client(make_settings, database_url):
    with TestClient(create_app(make_settings(database_url)), base_url=LOOPBACK) as client:
        yield client


def submit(client, data_root, name, **config):
    config = {"name": name, "data": {"root": str(data_root)}, **config}
    response = client.post("/api/v1/runs", json={"config": config})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def train(client, run_id, rows, *, result=None):
    """Claim ``run_id`` and store its epochs as a worker would: rows of (valid top-1, valid top-5) or
    (valid top-1, valid top-5, valid loss); then, given a trainer's ``result``, its success."""
    db = client.app.state.database
    with db.session(write=True) as session:
        claim = jobs.claim_run(session=session, worker="test", stale_after_seconds=60)
    assert claim is not None and claim.run_id == run_id
    with db.session(write=True) as session:
        for epoch, (top1, top5, *loss) in enumerate(rows, start=1):
            row = {"epoch": epoch, "train_loss": 1.0, "valid_top1": top1, "valid_top5": top5, "lr": 1e-3, "seconds": 2}
            jobs.store_epoch(
                session=session,
                run_id=run_id,
                attempt=claim.attempt,
                row={**row, "valid_loss": loss[0]} if loss else row,
            )
    if result is not None:
        with db.session(write=True) as session:
            assert jobs.succeed(session=session, run_id=run_id, attempt=claim.attempt, result=result)


def test_a_comparison_answers_for_the_runs_that_exist_and_names_the_others(client, data_root):
    tricked = submit(client, data_root, "with tricks", schedule={"name": "cosine"}, tricks={"label_smoothing": 0.1})
    plain = submit(client, data_root, "plain")
    train(client, tricked, [(60.0, 85.0), (87.5, 88.0)])
    train(client, plain, [(84.375, 86.0), (62.0, 91.0)])

    answer = client.get("/api/v1/compare", params={"run_ids": f"{tricked},9999,{plain}"})
    assert answer.status_code == 200, answer.text
    table = answer.json()
    assert [row["run_id"] for row in table["data"]] == [tricked, plain] and table["missing"] == [9999]
    # Not the first id: the run with the fewest tricks is the baseline, whatever the order.
    assert table["baseline"] == plain
    rows = {row["run_id"]: row for row in table["data"]}
    # The delta is the unrounded difference, +3.125, rounded once: not 87.50 - 84.38 = +3.12.
    assert rows[plain]["is_baseline"] and rows[tricked]["top1_text"] == "87.50 (+3.13p)"
    assert (rows[tricked]["top1_delta"], rows[tricked]["top5_delta"]) == (3.125, 2.0)
    assert (rows[plain]["epoch"], rows[plain]["top5"]) == (1, 86.0)  # top-5 of the peak epoch, not 91
    assert rows[tricked]["configuration"] != rows[plain]["configuration"]
    seed_twin = submit(client, data_root, "plain, another seed", seed=7)
    twin_row = client.get("/api/v1/compare", params={"run_ids": f"{plain},{seed_twin}"}).json()["data"][1]
    assert twin_row["configuration"] == rows[plain]["configuration"] and twin_row["seed"] == 7
    reversed_order = client.get("/api/v1/compare", params={"run_ids": f"{plain},{tricked}"}).json()
    assert reversed_order["baseline"] == plain

    csv = client.get("/api/v1/compare.csv", params={"run_ids": f"{tricked},9999,{plain}"}).text
    assert len(csv.splitlines()) == 3
    assert ",87.5,3.125,88.0,2.0," in csv.splitlines()[1]

    assert client.get("/api/v1/compare", params={"run_ids": "9998,9999"}).json() == {
        "detail": "runs 9998, 9999 not found"
    }
    for baseline, message in ((9999, "not one of the compared runs"), (7777, "not one of the compared runs")):
        refused = client.get("/api/v1/compare", params={"run_ids": f"{plain},{tricked}", "baseline": baseline})
        assert refused.status_code == 422 and message in refused.json()["detail"][0]["msg"]
    gone = client.get("/api/v1/compare", params={"run_ids": f"{plain},9999", "baseline": 9999})
    assert (gone.status_code, gone.json()["detail"]) == (
        422,
        [{"loc": ["query", "baseline"], "msg": "baseline run 9999 not found", "type": "value_error"}],
    )


def test_every_page_reads_the_peak_epoch_as_the_compare_table_does(client, data_root):
    run_id = submit(client, data_root, "peaks")
    train(client, run_id, [(50.0, 80.0), (60.0, 85.0), (60.0, 90.0), (55.0, 91.0)])
    run = client.get(f"/api/v1/runs/{run_id}").json()
    assert (run["peak_epoch"], run["peak_valid_top1"], run["peak_valid_top5"]) == (2, 60.0, 85.0)
    row = client.get("/api/v1/compare", params={"run_ids": run_id}).json()["data"][0]
    assert (row["epoch"], row["top1"], row["top5"]) == (
        run["peak_epoch"],
        run["peak_valid_top1"],
        run["peak_valid_top5"],
    )


def test_checkpoint_and_peak_name_two_epochs_of_one_run(client, data_root):
    """The lowest valid loss (epoch 4, the checkpoint the trainer kept and tested) is not the highest
    valid top-1 (epoch 2, the peak the report quotes): each figure answers under its own name."""
    run_id = submit(client, data_root, "two epochs")
    rows = [(50.0, 80.0, 1.5), (62.5, 85.0, 1.2), (61.0, 90.0, 1.1), (60.0, 91.0, 1.0)]
    result = {
        "test_loss": 1.05,
        "test_top1": 58.25,
        "test_top5": 88.0,
        "checkpoint_epoch": 4,
        "checkpoint_valid_loss": 1.0,
        "checkpoint_valid_top1": 60.0,
        "checkpoint_valid_top5": 91.0,
        "peak_epoch": 2,
        "peak_valid_top1": 62.5,
        "peak_valid_top5": 85.0,
    }
    train(client, run_id, rows, result=result)
    run = client.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "succeeded"
    assert {key: run[key] for key in result} == result
    assert not [key for key in run if key.startswith(("best_", "max_valid"))]
    listed = client.get("/api/v1/runs").json()["data"][0]
    assert (listed["checkpoint_epoch"], listed["peak_epoch"]) == (4, 2)

    row = client.get("/api/v1/compare", params={"run_ids": run_id, "mode": "peak"}).json()["data"][0]
    assert (row["epoch"], row["top1"], row["checkpoint_epoch"], row["test_top1"]) == (2, 62.5, 4, 58.25)
    final = client.get("/api/v1/compare", params={"run_ids": run_id, "mode": "final"}).json()
    assert (final["mode"], final["data"][0]["epoch"], final["data"][0]["top1"]) == ("final", 4, 60.0)
    csv_lines = client.get("/api/v1/compare.csv", params={"run_ids": run_id}).text.splitlines()
    header, values = csv_lines[0].split(","), csv_lines[1].split(",")
    assert (values[header.index("epoch")], values[header.index("checkpoint_epoch")]) == ("2", "4")
    assert client.get("/api/v1/compare", params={"run_ids": run_id, "mode": "best"}).status_code == 422


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/runs/9999", 404, "There is no run #9999"),
        ("/runs/abc", 404, "“abc” is not a run id."),
        ("/runs/0", 404, "“0” is not a run id."),
        ("/studies/9999", 404, "There is no study #9999"),
        ("/studies/abc", 404, "“abc” is not a study id."),
        ("/compare?runs=abc", 400, "“abc” is not a list of run ids, e.g. 1,2,3."),
        ("/compare?runs=9998,9999", 404, "There are no runs #9998, #9999"),
        ("/nope", 404, "Nothing lives at /nope."),
        ("/vendor/nope.js", 404, "There is no file nope.js here."),
    ],
)
def test_every_url_gets_a_page_with_a_way_back(client, path, status, text):
    answer = client.get(path)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert text in answer.text and 'href="/"' in answer.text


def test_a_comparison_with_a_missing_run_shows_the_others_and_names_it(client, data_root):
    run_id = submit(client, data_root, "still here")
    page = client.get(f"/compare?runs={run_id},9999")
    assert page.status_code == 200
    assert f'data-run-ids="{run_id}"' in page.text and "Run #9999" in page.text and "does not exist" in page.text


def test_the_api_keeps_its_json_errors(client):
    assert client.get("/api/v1/nope").json() == {"detail": "Not Found"}
    assert client.get("/api/v1/runs/abc").status_code == 422
    assert client.get("/api/v1/runs/9999").json() == {"detail": "run 9999 not found"}


def test_the_docs_are_served_from_installed_files(client):
    docs = client.get("/docs").text
    assert '<script src="/vendor/swagger-ui-bundle.js">' in docs and "cdn" not in docs.lower()
    assert "<script>" not in docs  # the init script is a static file (the CSP forbids inline ones)
    assert "/vendor/redoc.standalone.js" in client.get("/redoc").text
    for name, kind in (
        ("swagger-ui-bundle.js", "javascript"),
        ("swagger-ui.css", "css"),
        ("redoc.standalone.js", "javascript"),
    ):
        answer = client.get(f"/vendor/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"] and len(answer.content) > 100_000
    assert client.get("/openapi.json").json()["info"]["title"] == "tricklab"


def test_the_workers_say_which_devices_they_have(client):
    assert client.get("/api/v1/workers").json() == {"data": [], "count": 0, "alive": 0, "gpus": 0}
    db = client.app.state.database
    gpu = [{"device": "cuda:0", "kind": "cuda", "name": "NVIDIA H200", "memory_gib": 139.8}]
    with db.session(write=True) as session:
        workers.report_worker(session=session, name="gpu-host:1:cuda:0", devices=gpu, started_at=utcnow())
        workers.report_worker(
            session=session,
            name="old-host:2",
            devices=detect_devices("cpu"),
            started_at=utcnow() - timedelta(hours=2),
            now=utcnow() - timedelta(hours=1),
        )
    answer = client.get("/api/v1/workers").json()
    assert (answer["count"], answer["alive"], answer["gpus"]) == (2, 1, 1)
    assert [(worker["name"], worker["alive"]) for worker in answer["data"]] == [
        ("gpu-host:1:cuda:0", True),
        ("old-host:2", False),
    ]
    assert answer["data"][0]["devices"][0]["name"] == "NVIDIA H200"
    assert answer["data"][1]["devices"][0]["kind"] == "cpu"
