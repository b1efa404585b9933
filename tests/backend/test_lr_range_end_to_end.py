"""An LR range test through the API, a real worker and the real trainer, on SQLite and PostgreSQL: queued
as a run of its own kind, its steps stored, its curve and suggestion read back, and no checkpoint left."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from testlib.models import TINY_ARCH

from backend.models import Run, RunKind, StepMetric
from backend.settings import default_trainer_command
from trainer.lr_finder.sweep import LRSweep, sweep_rates
from tricklab.local import wait_for

TINY: dict[str, Any] = {
    "name": "find lr",
    "model": {"arch": TINY_ARCH, "pretrained": False},
    "batch_size": 16,
    "data": {"image_size": 32, "num_workers": 0},
    "optim": {"layer_lr_divisors": {"stem": 10, "layer1": 10, "layer2": 5, "layer3": 5, "layer4": 1, "fc": 1}},
}
SWEEP = {"start_lr": 1e-5, "end_lr": 1.0, "steps": 8}


def test_a_range_test_is_queued_swept_by_a_worker_and_read_back(
    database_url, make_settings, make_database, start_worker, live_server, demo_dataset
):
    settings = make_settings(database_url, data_roots=[demo_dataset], trainer_command=default_trainer_command())
    database = make_database(settings)
    url = live_server(settings) + "/api/v1"
    config = {**TINY, "data": {**TINY["data"], "root": str(demo_dataset)}}

    created = httpx.post(f"{url}/lr-range-tests", json={"config": config, "sweep": SWEEP})
    assert created.status_code == 201, created.text
    test_id = created.json()["id"]
    queued = httpx.get(f"{url}/lr-range-tests/{test_id}").json()
    assert queued["status"] == "queued" and queued["curve"] == [] and queued["suggestion"] is None
    assert queued["sweep"] == LRSweep(**SWEEP).model_dump(mode="json")  # the rest: the report's defaults
    assert queued["config"]["optim"]["layer_lr_divisors"]["layer2"] == 5  # the config's divisors are kept

    start_worker(settings)
    done = wait_for(
        lambda: (
            (answer := httpx.get(f"{url}/lr-range-tests/{test_id}").json())["status"] in ("succeeded", "failed")
            and answer
        ),
        timeout=300,
        what="the range test to end",
    )
    assert done["status"] == "succeeded", done["error"]
    steps = len(done["curve"])
    assert 2 <= steps <= 8 and (done["stopped"] is None) == (steps == 8)
    assert [point["lr"] for point in done["curve"]] == sweep_rates(LRSweep(**SWEEP))[:steps]
    assert all(math.isfinite(point["smoothed"]) for point in done["curve"] if point["loss"] is not None)
    assert done["minimum"] is not None and done["minimum_tenth"] == done["minimum"]["lr"] / 10
    if done["steepest"] is not None:
        assert done["suggestion"] == done["steepest"]["lr"]
        assert any("suggestion: optim.lr" in line for line in done["findings"])

    with database.session() as session:
        run = session.get(Run, test_id)
        assert run.kind == RunKind.lr_range and run.sweep["steps"] == 8
        stored = session.scalars(select(StepMetric).where(StepMetric.run_id == test_id)).all()
        assert sorted(step.step for step in stored) == list(range(1, steps + 1))
    # Model and optimizer were thrown away: nothing a run could resume from.
    folder = Path(settings.run_dir(test_id))
    assert sorted(path.name for path in folder.rglob("*")) == ["ATTEMPT", "config.json", "sweep.json"]

    listed = httpx.get(f"{url}/runs", params={"kind": "lr_range"}).json()
    assert [run["id"] for run in listed["data"]] == [test_id] and listed["data"][0]["kind"] == "lr_range"
    assert httpx.get(f"{url}/runs", params={"kind": "training"}).json()["count"] == 0
    # A range test keeps no model: it cannot teach.
    student = {**config, "tricks": {"kd": {"teacher": test_id}}}
    refused = httpx.post(f"{url}/runs", json={"config": student})
    assert refused.status_code == 422 and "keeps no model" in refused.text


def test_bad_range_test_requests_name_the_field(make_settings, sqlite_url, live_server, demo_dataset):
    settings = make_settings(sqlite_url, data_roots=[demo_dataset])
    url = live_server(settings) + "/api/v1"
    config = {**TINY, "data": {**TINY["data"], "root": str(demo_dataset)}}

    def detail(body):
        answer = httpx.post(f"{url}/lr-range-tests", json=body)
        assert answer.status_code == 422, answer.text
        return [(item["loc"], item["msg"]) for item in answer.json()["detail"]]

    [(loc, msg)] = detail({"config": config, "sweep": {"steps": 1}})
    assert loc == ["body", "sweep", "steps"] and "greater than or equal to 2" in msg
    [(loc, msg)] = detail({"config": config, "sweep": {"stepz": 10}})
    assert loc == ["body", "sweep", "stepz"]
    [(loc, _)] = detail({"config": config, "sweep": {"start_lr": 1.0, "end_lr": 0.1}})
    assert loc == ["body", "sweep", "end_lr"]
    [(loc, _)] = detail({"config": {**config, "epochs": 0}})
    assert loc == ["body", "config", "epochs"]
    [(loc, _)] = detail({"config": config, "sweeps": {}})
    assert loc == ["body", "sweeps"]

    run = httpx.post(f"{url}/runs", json={"config": config}).json()
    assert run["kind"] == "training"
    missing = httpx.get(f"{url}/lr-range-tests/{run['id']}")
    assert missing.status_code == 404 and "not an LR range test" in missing.text
    assert httpx.get(f"{url}/lr-range-tests/999999").status_code == 404
    assert httpx.get(f"{url}/lr-range-tests/abc").status_code == 422
