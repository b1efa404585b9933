"""POST /api/v1/schedule/preview: the trainer's schedule, on the dataset's real steps per epoch."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import delete

from backend.models import Worker, utcnow
from backend.services import workers


def test_preview_counts_steps_from_the_dataset(api, demo_dataset):
    answer = api.post(
        "/api/v1/schedule/preview",
        json={
            "config": {
                "epochs": 2,
                "batch_size": 8,
                "schedule": {"name": "cosine"},
                "data": {"root": str(demo_dataset)},
            }
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # 4 classes x 12 images: int(12 * 0.8) = 9 train per class, 36, then int(36 * 0.9) = 32 after validation.
    assert (body["n_train"], body["steps_per_epoch"], body["steps_per_epoch_source"]) == (32, 4, "dataset")
    assert body["warnings"] == []
    assert body["steps"] == list(range(8)) and body["epochs"][4] == 1.0
    fc = body["groups"]["fc"]
    assert fc[0] == pytest.approx(1e-3 / 2) and fc[-1] < fc[0]
    assert body["groups"]["stem"][0] == pytest.approx(1e-4)


def test_preview_assumes_cub_when_the_dataset_is_missing(api, tmp_path):
    # Outside the data roots the dataset is not even looked at.
    body = api.post("/api/v1/schedule/preview", json={"config": {"data": {"root": str(tmp_path)}}}).json()
    assert (body["n_train"], body["steps_per_epoch_source"]) == (8469, "assumed CUB")
    assert body["steps_per_epoch"] == math.ceil(8469 / 64)


def test_preview_rejects_bad_values_with_the_runs_api_shape(api):
    answer = api.post("/api/v1/schedule/preview", json={"config": {"epochs": -1, "schedule": {"warmup_epochs": 1}}})
    assert answer.status_code == 422
    errors = {tuple(item["loc"]): item["msg"] for item in answer.json()["detail"]}
    assert errors[("body", "config", "epochs")] == "Input should be greater than or equal to 1"


def preview(api, demo_dataset, **config):
    return api.post("/api/v1/schedule/preview", json={"config": {**config, "data": {"root": str(demo_dataset)}}})


def test_a_batch_larger_than_the_split_is_warned_and_one_with_no_full_step_refused(api, demo_dataset):
    # The demo's 32 training images: a batch of 64 trains them as one step per epoch.
    larger = preview(api, demo_dataset, batch_size=64).json()
    assert larger["steps_per_epoch"] == 1
    assert larger["warnings"] == [
        "batch_size 64 is larger than the training split (32 images): each epoch is one step of 32 images"
    ]
    # runtime.compile trains full batches only: 2 of 12, and 8 images (25 %) left out of each epoch.
    dropping = preview(api, demo_dataset, batch_size=12, runtime={"compile": True}).json()
    assert dropping["steps_per_epoch"] == 2
    assert dropping["warnings"] == [
        "batch_size 12 leaves 8 of the 32 training images out of each epoch (25%): runtime.compile trains full "
        "batches only"
    ]
    assert preview(api, demo_dataset, batch_size=16, runtime={"compile": True}).json()["warnings"] == []
    # No full batch at all: refused, as queueing the run is, naming the field.
    for answer in (
        preview(api, demo_dataset, batch_size=64, runtime={"compile": True}),
        api.post(
            "/api/v1/runs",
            json={"config": {"batch_size": 64, "runtime": {"compile": True}, "data": {"root": str(demo_dataset)}}},
        ),
    ):
        assert answer.status_code == 422, answer.text
        (error,) = answer.json()["detail"]
        assert error["loc"] == ["body", "config", "batch_size"]
        assert error["msg"].startswith("runtime.compile trains on full batches only, and batch_size 64 is more than")


def test_the_preview_warns_of_a_step_no_living_workers_gpu_holds(api, demo_dataset):
    big = {"model": {"arch": "resnet50", "pretrained": False}, "batch_size": 256, "runtime": {"amp": False}}
    alone = preview(api, demo_dataset, **big).json()
    # No GPU worker: the figure, and nothing to set it against.
    assert alone["gpu_memory"]["gib"] == 25.6 and alone["gpu_memory"]["largest_gpu_gib"] is None
    assert alone["gpu_memory"]["basis"].startswith("approximate: ")
    assert [warning for warning in alone["warnings"] if "GPU memory" in warning] == []
    # A worker reports its GPU as a worker does (GET /api/v1/workers lists it).
    gpu = [{"device": "cuda:0", "kind": "cuda", "name": "NVIDIA A10", "memory_gib": 22.0}]
    with api.app.state.database.session(write=True) as session:
        workers.report_worker(session=session, name="gpu-host:1", devices=gpu, started_at=utcnow())
    try:
        answer = preview(api, demo_dataset, **big).json()
        assert answer["gpu_memory"] == {**alone["gpu_memory"], "largest_gpu_gib": 22.0}
        assert answer["warnings"][-1] == (
            "resnet50 at batch_size 256, 224 px, fp32 is estimated to need about 25.6 GiB of GPU memory for a "
            "training step; the largest GPU of the live workers has 22.0 GiB: lower batch_size to 217 or less, or "
            "turn runtime.amp on (about 13.8 GiB)"
        )
        fits = preview(api, demo_dataset, **{**big, "runtime": {"amp": True}}).json()
        assert fits["gpu_memory"]["gib"] == 13.8 and not [w for w in fits["warnings"] if "GPU memory" in w]
        # A teacher named by its run id adds its weights and its forward pass.
        teacher = api.post(
            "/api/v1/runs",
            json={"config": {"model": {"arch": "resnet152", "pretrained": False}, "data": {"root": str(demo_dataset)}}},
        ).json()
        distilled = preview(api, demo_dataset, **big, tricks={"kd": {"teacher": teacher["id"]}}).json()
        assert distilled["gpu_memory"]["gib"] > answer["gpu_memory"]["gib"] + 1
    finally:
        with api.app.state.database.session(write=True) as session:
            session.execute(delete(Worker))
            session.commit()
