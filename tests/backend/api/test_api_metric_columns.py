"""GET /api/v1/metrics/columns on a real database of each kind: the same numbers as the row-shaped
endpoint, runs that are gone, bad fields, the ETag of finished runs; and the compare table's epoch
and timing figures read without every row."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from testlib.processes import LOOPBACK

from backend.app import create_app
from backend.models import EpochMetric
from backend.reports.compare import pick_epoch
from backend.services import metrics as metric_service
from backend.services import queue as jobs
from trainer.protocol import EPOCH_FIELDS


@pytest.fixture
def client(make_settings, database_url):
    with TestClient(create_app(make_settings(database_url)), base_url=LOOPBACK) as client:
        yield client


def submit(client, data_root, **config):
    config = {"data": {"root": str(data_root)}, **config}
    response = client.post("/api/v1/runs", json={"config": config})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def train(client, run_id, rows, *, finish=True):
    db = client.app.state.database
    with db.session(write=True) as session:
        claim = jobs.claim_run(session=session, worker="test", stale_after_seconds=60)
    assert claim is not None and claim.run_id == run_id
    with db.session(write=True) as session:
        for epoch, row in enumerate(rows, start=1):
            jobs.store_epoch(session=session, run_id=run_id, attempt=claim.attempt, row={"epoch": epoch, **row})
        if finish:
            jobs.succeed(session=session, run_id=run_id, attempt=claim.attempt, result={"test_top1": 50.0})


def epoch_row(epoch, top1, **extra):
    return {
        "train_loss": 3.0 / epoch,
        "valid_top1": top1,
        "valid_top5": 90.0,
        "lr": 1e-3 / epoch,
        "seconds": 2.0,
        **extra,
    }


def test_columns_hold_the_rows_the_row_endpoint_holds_in_the_order_asked(client, data_root):
    first = submit(client, data_root, epochs=3)
    second = submit(client, data_root, epochs=2)
    train(client, first, [epoch_row(1, 10.0, data_wait_share=0.5), epoch_row(2, 20.0), epoch_row(3, 15.0)])
    train(client, second, [epoch_row(1, 30.0), epoch_row(2, 40.0, images_per_s=123.0)])
    ids = f"{second},{first}"

    answer = client.get("/api/v1/metrics/columns", params={"run_ids": ids}).json()
    assert answer["fields"] == ["epoch", *EPOCH_FIELDS]
    assert [run["run_id"] for run in answer["data"]] == [second, first]
    assert answer["count"] == 2 and answer["missing"] == []
    rows = client.get("/api/v1/metrics", params={"run_ids": ids}).json()["data"]
    for run in answer["data"]:
        own = [row for row in rows if row["run_id"] == run["run_id"]]
        for field in answer["fields"]:
            assert run[field] == [row[field] for row in own], field

    charted = client.get("/api/v1/metrics/columns", params={"run_ids": ids, "fields": "valid_top1, lr,valid_top1"})
    assert charted.json()["fields"] == ["epoch", "valid_top1", "lr"]
    assert charted.json()["data"][1] == {
        "run_id": first,
        "epoch": [1, 2, 3],
        "valid_top1": [10.0, 20.0, 15.0],
        "lr": [1e-3, 5e-4, 1e-3 / 3],
    }


def test_gone_runs_are_named_a_run_without_epochs_has_empty_columns_and_bad_fields_are_422(client, data_root):
    queued = submit(client, data_root)
    answer = client.get("/api/v1/metrics/columns", params={"run_ids": f"998,{queued}", "fields": "lr"}).json()
    assert answer["data"] == [{"run_id": queued, "epoch": [], "lr": []}] and answer["missing"] == [998]
    gone = client.get("/api/v1/metrics/columns", params={"run_ids": "998,999"})
    assert (gone.status_code, gone.json()) == (404, {"detail": "runs 998, 999 not found"})
    for fields, words in (("lr,top1", "unknown field 'top1'"), (" , ", "name at least one of")):
        bad = client.get("/api/v1/metrics/columns", params={"run_ids": str(queued), "fields": fields})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "fields"]
        assert words in bad.json()["detail"][0]["msg"]
    assert client.get("/api/v1/metrics/columns", params={"run_ids": "1;2"}).status_code == 422


def test_finished_runs_are_revalidated_without_a_body_until_one_changes(client, data_root):
    done = submit(client, data_root, epochs=2)
    train(client, done, [epoch_row(1, 10.0), epoch_row(2, 20.0)])
    live = submit(client, data_root, epochs=2)
    train(client, live, [epoch_row(1, 5.0)], finish=False)
    finished = submit(client, data_root, epochs=1)
    train(client, finished, [epoch_row(1, 1.0)])
    path = "/api/v1/metrics/columns"

    running = client.get(path, params={"run_ids": f"{done},{live}"})
    assert "etag" not in running.headers and running.headers["cache-control"] == "no-cache"

    first = client.get(path, params={"run_ids": str(done)})
    etag = first.headers["etag"]
    again = client.get(path, params={"run_ids": str(done)}, headers={"If-None-Match": f'"other", {etag}'})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    other_fields = client.get(path, params={"run_ids": str(done), "fields": "lr"}, headers={"If-None-Match": etag})
    assert other_fields.status_code == 200 and other_fields.headers["etag"] != etag

    # A run can leave the set only by being deleted: the answer names it, under another tag.
    both = client.get(path, params={"run_ids": f"{done},{finished}"})
    assert client.delete(f"/api/v1/runs/{finished}").status_code == 204
    after = client.get(path, params={"run_ids": f"{done},{finished}"}, headers={"If-None-Match": both.headers["etag"]})
    assert after.status_code == 200 and after.headers["etag"] != both.headers["etag"]
    assert after.json()["missing"] == [finished]


def test_the_database_picks_the_epoch_pick_epoch_picks(client, data_root):
    ties = submit(client, data_root, epochs=5)
    train(
        client,
        ties,
        [epoch_row(1, 50.0), epoch_row(2, 60.0), epoch_row(3, 60.0), epoch_row(4, None), epoch_row(5, 55.0)],
    )
    unscored = submit(client, data_root, epochs=1)
    train(client, unscored, [epoch_row(1, None)])
    empty = submit(client, data_root)
    ids = [ties, unscored, empty]
    with client.app.state.database.session() as session:
        rows = {run_id: list(session.execute(_all_rows(run_id))) for run_id in ids}
        for mode in ("peak", "final"):
            picked = {row.run_id: row for row in metric_service.picked_epochs(session=session, run_ids=ids, mode=mode)}
            expected = {run_id: pick_epoch(rows[run_id], mode) for run_id in ids}
            assert {run_id: row.epoch for run_id, row in picked.items()} == {
                run_id: row.epoch for run_id, row in expected.items() if row is not None
            }, mode
    assert metric_service.picked_epochs(session=session, run_ids=[], mode="peak") == []


def _all_rows(run_id):
    return select(EpochMetric.run_id, EpochMetric.epoch, EpochMetric.valid_top1, EpochMetric.valid_top5).where(
        EpochMetric.run_id == run_id
    )


def test_the_compare_table_carries_throughput_and_names_why_a_run_waits_for_data(client, data_root):
    slow = submit(
        client,
        data_root,
        name="slow loader",
        epochs=2,
        data={"root": str(data_root), "pipeline": "reference", "num_workers": 1},
    )
    fast = submit(client, data_root, name="fast", epochs=2)
    train(
        client,
        slow,
        [
            epoch_row(1, 10.0, images_per_s=100.0, data_wait_share=0.5),
            epoch_row(2, 20.0, images_per_s=120.0, data_wait_share=0.3),
        ],
    )
    train(client, fast, [epoch_row(1, 10.0, images_per_s=900.0, data_wait_share=0.01), epoch_row(2, 30.0)])

    rows = {
        row["run_id"]: row for row in client.get("/api/v1/compare", params={"run_ids": f"{slow},{fast}"}).json()["data"]
    }
    assert rows[slow]["images_per_s"] == pytest.approx(110.0) and rows[slow]["data_wait_share"] == pytest.approx(0.4)
    assert rows[slow]["epoch"] == 2 and rows[fast]["epoch"] == 2
    hint = rows[slow]["data_wait_hint"]
    assert hint.startswith("40 % of each training pass waits for the next batch: the reference pipeline")
    assert "1 loader worker" in hint and "data.pipeline: fast" in hint
    assert rows[fast]["data_wait_share"] == pytest.approx(0.01) and rows[fast]["data_wait_hint"] is None
    assert client.get(f"/api/v1/runs/{slow}").json()["data_wait_hint"] == hint
    csv = client.get("/api/v1/compare.csv", params={"run_ids": f"{slow},{fast}"}).text
    assert csv.splitlines()[0].endswith("seconds_per_epoch,images_per_s,data_wait_share")
