"""Queued runs finished as a worker finishes them, through the queue's own calls (claim, start event,
epochs, result), with values a test chooses: a study or comparison with exact numbers, without training."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from backend.db import Database
from backend.services import queue as jobs

SOFTWARE = "tricklab 9.9.9, torch 2.99.0+cu999"


def finish(database: Database, run_id: int, top1: Sequence[float], *, devices: str = "1 × H200") -> None:
    """Claim ``run_id`` (the next queued run), store one epoch per value of ``top1`` and succeed it."""
    with database.session(write=True) as session:
        claim = jobs.claim_run(session=session, worker="test-worker", stale_after_seconds=60)
    assert claim is not None and claim.run_id == run_id, (claim, run_id)
    with database.session(write=True) as session:
        jobs.record_start(
            session=session,
            run_id=run_id,
            attempt=claim.attempt,
            start_epoch=0,
            world_size=1,
            devices=devices,
            software=SOFTWARE,
        )
    with database.session(write=True) as session:
        for epoch, value in enumerate(top1, start=1):
            row = {
                "epoch": epoch,
                "train_loss": 2.0 / epoch,
                "valid_loss": 2.2 / epoch,
                "valid_top1": value,
                "valid_top5": min(100.0, value + 10),
                "lr": 1e-3 / epoch,
                "seconds": 2.0,
            }
            jobs.store_epoch(session=session, run_id=run_id, attempt=claim.attempt, row=row)
    last = len(top1)
    peak = max(range(last), key=lambda i: (top1[i], -i))
    result = {
        "test_loss": 1.0,
        "test_top1": top1[-1] - 1,
        "test_top5": min(100.0, top1[-1] + 5),
        "checkpoint_epoch": last,
        "checkpoint_valid_loss": 2.2 / last,
        "checkpoint_valid_top1": top1[-1],
        "checkpoint_valid_top5": min(100.0, top1[-1] + 10),
        "peak_epoch": peak + 1,
        "peak_valid_top1": top1[peak],
        "peak_valid_top5": min(100.0, top1[peak] + 10),
    }
    with database.session(write=True) as session:
        assert jobs.succeed(session=session, run_id=run_id, attempt=claim.attempt, result=result)


def finish_all(database: Database, run_ids: Sequence[int], values: Callable[[int], Sequence[float]]) -> None:
    """Finish ``run_ids`` in queue order (oldest first: they were queued at one priority)."""
    for run_id in sorted(run_ids):
        finish(database, run_id, values(run_id))


# A 2 x 2 grid over two seeds: a factorial design, so the report has its effects chart.
GRID = {"cosine": True, "label_smoothing": [0, 0.1]}
SMALL = {"model.arch": "resnet18", "model.pretrained": False, "data.image_size": 32, "epochs": 3, "batch_size": 16}


def top1_of(run_id: int) -> list[float]:
    """Three epochs of valid top-1 that differ from run to run (some peak before the end)."""
    return [50.0 + run_id % 3, 60.0 + (run_id * 7) % 5 + 0.125, 58.0 + (run_id * 5) % 7 + 0.375]


def grid_study(client: Any, data_root: Path, name: str) -> dict[str, Any]:
    """The grid study created through the API, its 8 runs finished; the study as GET answers it."""
    body = {"name": name, "grid": {"switches": GRID}, "seeds": 2, "overrides": {**SMALL, "data.root": str(data_root)}}
    created = client.post("/api/v1/studies", json=body)
    assert created.status_code == 201, created.text
    study = created.json()
    finish_all(
        client.app.state.database, [run["run_id"] for group in study["groups"] for run in group["runs"]], top1_of
    )
    return client.get(f"/api/v1/studies/{study['id']}").json()


def runs_named(client: Any, data_root: Path, names: Sequence[str]) -> list[int]:
    """One finished run per name, the first plain and each other one with label smoothing."""
    ids = []
    for index, name in enumerate(names):
        config = {"name": name, "data": {"root": str(data_root)}, "model": {"arch": "resnet18", "pretrained": False}}
        if index:
            config["tricks"] = {"label_smoothing": 0.1}
        created = client.post("/api/v1/runs", json={"config": {**config, "epochs": 3}})
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    finish_all(client.app.state.database, ids, top1_of)
    return ids
