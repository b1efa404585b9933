"""LR range tests as the API sees them: queue one of a config, read its curve and what it found.

A range test is a run of kind ``lr_range`` with its sweep stored beside its config; a worker runs it
as it runs any run (the child finds the sweep.json and sweeps instead of training), and its steps are
stored in ``step_metrics``. The curve, the minimum and the suggestion are computed here from those
steps by ``trainer.lr_finder.sweep.analyse``, the function the trainer stopped the sweep with.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy.orm import Session

from backend.models import Run, RunKind, RunStatus
from backend.schemas.lr_range import LRRangeTestPublic
from backend.services import runs
from backend.services.errors import InvalidSweep, NotFound
from backend.settings import Settings
from trainer.config import ConfigError
from trainer.lr_finder.sweep import CurvePoint, LRSweep, analyse, findings


def create_range_test(
    *,
    session: Session,
    settings: Settings,
    config: dict[str, Any],
    sweep: dict[str, Any],
    priority: int = 0,
    created_by: str | None = None,
) -> Run:
    """Queue a range test of a (partial) RunConfig, checked as a run's is; ``sweep`` is a partial
    LRSweep (the report's range test where keys are left out)."""
    try:
        spec = LRSweep.from_dict(sweep)
    except ConfigError as exc:
        raise InvalidSweep(exc.errors) from None
    return runs.create_run(
        session=session,
        settings=settings,
        config=config,
        priority=priority,
        created_by=created_by,
        sweep=spec.model_dump(mode="json"),
    )


def get_range_test(*, session: Session, run_id: int) -> LRRangeTestPublic:
    """Its status, the curve of the steps stored so far, the minimum and, once it has succeeded, the
    suggestion; NotFound for a training run."""
    run = runs.get_run(session=session, run_id=run_id)
    if run.kind != RunKind.lr_range or run.sweep is None:
        raise NotFound(f"run {run_id} is a training run, not an LR range test; see /api/v1/runs/{run_id}")
    sweep = LRSweep.model_validate(run.sweep)
    steps = runs.step_metrics(session=session, run_id=run_id)
    # Only a finished sweep's curve is final: until then (or if it failed) there is no suggestion.
    analysis = analyse(
        [step.lr if step.lr is not None else 0.0 for step in steps],
        [step.loss for step in steps],
        sweep,
        finished=run.status == RunStatus.succeeded,
    )
    return LRRangeTestPublic.model_validate(
        {
            "id": run.id,
            "name": run.name,
            "status": run.status,
            "error": run.error,
            "cancel_requested": run.cancel_requested,
            "created_at": run.created_at,
            "finished_at": run.finished_at,
            "config": run.config,
            "sweep": sweep.model_dump(mode="json"),
            "curve": [asdict(point) for point in analysis.points],
            "minimum": _point(analysis.minimum),
            "minimum_tenth": analysis.minimum_tenth,
            "steepest": _point(analysis.steepest),
            "suggestion": analysis.suggestion,
            "stopped": None if analysis.stop is None else asdict(analysis.stop),
            "findings": findings(analysis) if steps else [],
        }
    )


def _point(point: CurvePoint | None) -> dict[str, Any] | None:
    return None if point is None else asdict(point)
