"""Finished runs written straight into a dashboard's database, as its worker would have left them.

For the pages that show many runs (a study's 12, a comparison of 30) or exact values (65.625), where
training each one would take minutes and give numbers no test can choose: the rows are the ones the
worker writes (a succeeded run, its epochs, its result), through the real models, in the real
database file the server reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from backend.db import Database
from backend.models import EpochMetric, Run, RunStatus, utcnow
from trainer.config import RunConfig, apply_overrides

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
