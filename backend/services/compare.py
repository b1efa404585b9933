"""The report's summary table for a set of runs: the runs read, then compared against a baseline.

A comparison names runs that may have been deleted since its link was made: it answers for the runs
that exist and names the others, and only a comparison of nothing at all is not found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Run
from backend.reports.compare import CompareRow, Mode, compare_rows, default_baseline
from backend.services import metrics as metric_service
from backend.services import runs as run_service
from backend.services.errors import InvalidParameter, NotFound
from backend.settings import Settings


@dataclass(frozen=True)
class Comparison:
    rows: list[CompareRow]
    mode: Mode
    baseline: int
    missing: list[int]  # ids asked for that name no run


def _existing(session: Session, ids: Sequence[int]) -> dict[int, Run]:
    return {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(ids)))} if ids else {}


def missing_runs(*, session: Session, run_ids: Sequence[int]) -> list[int]:
    """The ids among ``run_ids`` that name no run, in the order given."""
    found = set(session.scalars(select(Run.id).where(Run.id.in_(run_ids)))) if run_ids else set()
    return [run_id for run_id in run_ids if run_id not in found]


def compare_runs(
    *, session: Session, settings: Settings, run_ids: Sequence[int], baseline: int | None, mode: Mode
) -> Comparison:
    """One row per existing run, in the order given, with deltas against ``baseline`` (default: the
    run with the fewest tricks, ties to the oldest); NotFound when none of the runs exists."""
    ids = list(dict.fromkeys(run_ids))
    if baseline is not None and baseline not in ids:
        raise InvalidParameter(("query", "baseline"), f"baseline {baseline} is not one of the compared runs")
    found = _existing(session, ids)
    missing = [run_id for run_id in ids if run_id not in found]
    if not found:
        raise NotFound(f"run{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))} not found")
    if baseline is not None and baseline not in found:
        raise InvalidParameter(("query", "baseline"), f"baseline run {baseline} not found")
    present = [run_id for run_id in ids if run_id in found]
    # One row per run, the epoch the table reads, picked by the database: the table needs no other rows.
    metrics = metric_service.picked_epochs(session=session, run_ids=present, mode=mode)
    public = run_service.public_runs(session=session, settings=settings, runs=[found[run_id] for run_id in present])
    chosen = default_baseline(public) if baseline is None else baseline
    return Comparison(compare_rows(public, metrics, baseline_id=chosen, mode=mode), mode, chosen, missing)
