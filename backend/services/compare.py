"""The report's summary table for a set of runs: the runs read, then compared against a baseline.

A comparison names runs that may have been deleted since its link was made: it answers for the runs
that exist and names the others, and only a comparison of nothing at all is not found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Run
from backend.reports.compare import compare_rows, default_baseline
from backend.reports.config_diff import config_diff
from backend.reports.timing import data_wait_hint
from backend.schemas.compare import CompareRow, ConfigDiff, Mode
from backend.services import metrics as metric_service
from backend.services import runs as run_service
from backend.services.errors import InvalidParameter, NotFound
from trainer.config import RunConfig


@dataclass(frozen=True)
class Comparison:
    rows: list[CompareRow]
    mode: Mode
    baseline: int
    missing: list[int]  # ids asked for that name no run
    config_diff: ConfigDiff


@dataclass(frozen=True)
class _ComparedRun:
    """What the table reads of a run (``RunValues``), its config parsed once for every use."""

    id: int
    name: str
    status: str
    config: RunConfig
    created_at: datetime
    epochs: int
    seconds_per_epoch: float | None
    test_top1: float | None
    test_top5: float | None
    checkpoint_epoch: int | None
    images_per_s: float | None
    data_wait_share: float | None
    data_wait_hint: str | None


def missing_runs(*, session: Session, run_ids: Sequence[int]) -> list[int]:
    """The ids among ``run_ids`` that name no run, in the order given."""
    found = set(session.scalars(select(Run.id).where(Run.id.in_(run_ids)))) if run_ids else set()
    return [run_id for run_id in run_ids if run_id not in found]


def _compared_runs(*, session: Session, run_ids: Sequence[int]) -> dict[int, _ComparedRun]:
    """The runs among ``run_ids`` that exist: their columns (plain rows, no ORM objects) and the
    timing means of their epochs."""
    found = session.execute(
        select(
            Run.id, Run.name, Run.status, Run.config, Run.created_at, Run.test_top1, Run.test_top5, Run.checkpoint_epoch
        ).where(Run.id.in_(run_ids))
    ).all()
    summaries = run_service.epoch_summaries(session=session, run_ids=[run.id for run in found])
    compared = {}
    for run in found:
        config = RunConfig.model_validate(run.config)
        summary = summaries.get(run.id)
        share = summary.data_wait_share if summary else None
        compared[run.id] = _ComparedRun(
            id=run.id,
            name=run.name,
            status=run.status,
            config=config,
            created_at=run.created_at,
            epochs=config.epochs,
            seconds_per_epoch=summary.seconds_per_epoch if summary else None,
            test_top1=run.test_top1,
            test_top5=run.test_top5,
            checkpoint_epoch=run.checkpoint_epoch,
            images_per_s=summary.images_per_s if summary else None,
            data_wait_share=share,
            data_wait_hint=data_wait_hint(config, share),
        )
    return compared


def compare_runs(*, session: Session, run_ids: Sequence[int], baseline: int | None, mode: Mode) -> Comparison:
    """One row per existing run, in the order given, with deltas against ``baseline`` (default: the
    run with the fewest tricks, ties to the oldest); NotFound when none of the runs exists."""
    ids = list(dict.fromkeys(run_ids))
    if baseline is not None and baseline not in ids:
        raise InvalidParameter(("query", "baseline"), f"baseline {baseline} is not one of the compared runs")
    found = _compared_runs(session=session, run_ids=ids) if ids else {}
    missing = [run_id for run_id in ids if run_id not in found]
    if not found:
        raise NotFound(f"run{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))} not found")
    if baseline is not None and baseline not in found:
        raise InvalidParameter(("query", "baseline"), f"baseline run {baseline} not found")
    runs = [found[run_id] for run_id in ids if run_id in found]
    # One row per run, the epoch the table reads, picked by the database: the table needs no other rows.
    metrics = metric_service.picked_epochs(session=session, run_ids=[run.id for run in runs], mode=mode)
    chosen = default_baseline(runs) if baseline is None else baseline
    rows = compare_rows(runs, metrics, baseline_id=chosen, mode=mode)
    return Comparison(rows, mode, chosen, missing, config_diff(runs))
