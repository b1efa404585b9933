"""Creating sweeps through the service and reading back their trials and Optuna's study, for the sweep
controller's tests (its runs are trained by testlib.sweeps.Workers)."""

from __future__ import annotations

from typing import Any

import optuna
from sqlalchemy import select

from backend.db import Database
from backend.models import Sweep, SweepTrial
from backend.schemas.sweep_spec import SweepCreate
from backend.services import sweep_optuna, sweeps
from backend.settings import Settings

EPOCHS = 4


def base(settings: Settings, **more: Any) -> dict[str, Any]:
    return {
        "data.root": str(settings.data_roots[0]),
        "model.arch": "resnet18",
        "model.pretrained": False,
        "data.image_size": 32,
        "batch_size": 16,
        "epochs": EPOCHS,
        **more,
    }


def create(database: Database, settings: Settings, **body: Any) -> int:
    with database.session(write=True) as session:
        return sweeps.create_sweep(
            session=session, settings=settings, request=SweepCreate.model_validate({"name": "s", **body})
        ).id


def trials(database: Database, sweep_id: int) -> list[SweepTrial]:
    with database.session() as session:
        return list(
            session.scalars(select(SweepTrial).where(SweepTrial.sweep_id == sweep_id).order_by(SweepTrial.number))
        )


def study_of(database: Database, settings: Settings, sweep_id: int) -> optuna.Study:
    with database.session() as session:
        sweep = session.get(Sweep, sweep_id)
    assert sweep is not None
    return sweep_optuna.study(settings.database_url, sweep)


def mixup_curve(config: dict[str, Any], epoch: int) -> float:
    """Mixup alpha 0.1 is clearly best; each seed adds its own noise, so seeds spread."""
    alpha = config["tricks"]["mixup_alpha"]
    top = 80.0 if alpha == 0.1 else 40.0 + 10 * alpha
    return top * epoch / EPOCHS + (config["seed"] % 3) * 0.5
