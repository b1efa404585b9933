"""Finished runs written straight into a dashboard's database, as its worker would have left them.

For the pages that show many runs (a study's 12, a comparison of 30) or exact values (65.625), where
training each one would take minutes and give numbers no test can choose: the rows are the ones the
worker writes (a succeeded run, its epochs, its result), through the real models, in the real
database file the server reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from backend.db import Database
from backend.models import EpochMetric, Run, RunStatus, utcnow
from trainer.config import RunConfig, apply_overrides
from trainer.protocol import RunFolder

# The runs' size; their epochs are as many as their values.
BASE = {"model.arch": "resnet18", "model.pretrained": False, "data.image_size": 32, "batch_size": 16}


@dataclass(frozen=True)
class Finished:
    """One run to write: dotted overrides on ``BASE``, and per epoch (valid top-1, valid top-5)."""

    name: str
    overrides: Mapping[str, Any]
    valid: Sequence[tuple[float, float]]
    test: tuple[float, float] = (60.0, 85.0)
    timing: Mapping[str, Any] = field(default_factory=dict)  # every epoch's timing fields, e.g. data_wait_share


def add_finished_runs(database_url: str, runs: Sequence[Finished]) -> list[int]:
    """Write ``runs`` as succeeded, oldest first, with their epochs; returns their ids."""
    database = Database(database_url)
    ids = []
    try:
        with database.transaction(write=True) as session:
            start = utcnow() - timedelta(hours=len(runs))
            for index, spec in enumerate(runs):
                epochs = len(spec.valid)
                values = {**BASE, "epochs": epochs, "name": spec.name, **spec.overrides}
                config = RunConfig.from_dict(apply_overrides({}, values))
                peak = max(range(epochs), key=lambda i: (spec.valid[i][0], -i))
                # valid_loss falls every epoch (below), so the kept checkpoint is the last epoch.
                kept = epochs - 1
                created = start + timedelta(minutes=index)
                run = Run(
                    name=spec.name,
                    status=RunStatus.succeeded,
                    config=config.model_dump(mode="json"),
                    config_hash=config.fingerprint(),
                    attempt=1,
                    worker="fixture",
                    created_at=created,
                    started_at=created,
                    finished_at=created + timedelta(seconds=30),
                    test_top1=spec.test[0],
                    test_top5=spec.test[1],
                    checkpoint_epoch=kept + 1,
                    checkpoint_valid_loss=2.2 / (kept + 1),
                    checkpoint_valid_top1=spec.valid[kept][0],
                    checkpoint_valid_top5=spec.valid[kept][1],
                    peak_epoch=peak + 1,
                    peak_valid_top1=spec.valid[peak][0],
                    peak_valid_top5=spec.valid[peak][1],
                )
                session.add(run)
                session.flush()
                for epoch, (top1, top5) in enumerate(spec.valid, start=1):
                    session.add(
                        EpochMetric(
                            run_id=run.id,
                            epoch=epoch,
                            attempt=1,
                            train_loss=2.0 / epoch + index * 0.01,
                            valid_loss=2.2 / epoch,
                            valid_top1=top1,
                            valid_top5=top5,
                            lr=1e-3 / epoch,
                            seconds=5.0,
                            **spec.timing,
                        )
                    )
                ids.append(run.id)
    finally:
        database.dispose()
    return ids


def write_run_folder(runs_dir: Path, run_id: int, *, checkpoint_bytes: int = 4096, epochs: int = 2) -> Path:
    """Run ``run_id``'s folder as a finished trainer leaves it: config, epochs, result, TensorBoard
    events, both checkpoints (``checkpoint_bytes`` each, of counting bytes so any slice is checkable)
    and a log; returns the folder."""
    folder = RunFolder(runs_dir / str(run_id))
    (folder.checkpoints).mkdir(parents=True, exist_ok=True)
    folder.tensorboard.mkdir(exist_ok=True)
    folder.rank_logs(1).mkdir(parents=True, exist_ok=True)
    folder.attempt.write_text("1\n")
    folder.config.write_text(json.dumps({"name": f"run {run_id}", "epochs": epochs}))
    rows = [json.dumps({"epoch": epoch, "valid_top1": 50.0}) + "\n" for epoch in range(1, epochs + 1)]
    folder.metrics.write_text("".join(rows))
    folder.result.write_text(json.dumps({"test_top1": 60.0}))
    (folder.tensorboard / "events.out.tfevents.1.host").write_bytes(b"\x00tb" * 100)
    (folder.rank_logs(1) / "rank0.log").write_text("rank 0 trained\n")
    pattern = bytes(range(256)) * (checkpoint_bytes // 256 + 1)
    folder.kept_checkpoint.write_bytes(pattern[:checkpoint_bytes])
    folder.last_checkpoint.write_bytes(pattern[:checkpoint_bytes])
    return folder.path
