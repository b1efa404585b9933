"""The report's summary table for a set of runs: the runs read, then compared against a baseline."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Run
from backend.reports.compare import CompareRow, Mode, compare_rows
from backend.services import runs as run_service
from backend.services.errors import InvalidParameter
from backend.settings import Settings


def compare_runs(
    *, session: Session, settings: Settings, run_ids: Sequence[int], baseline: int | None, mode: Mode
) -> list[CompareRow]:
    """One row per run, in the order given; the deltas are against ``baseline`` (default: the first run)."""
    ids = list(dict.fromkeys(run_ids))
    if baseline is not None and baseline not in ids:
        raise InvalidParameter(("query", "baseline"), f"baseline {baseline} is not one of the compared runs")
    metrics = run_service.metrics_of_runs(session=session, run_ids=ids)  # NotFound names any missing run
    found = {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(ids)))}
    public = run_service.public_runs(session=session, settings=settings, runs=[found[run_id] for run_id in ids])
    return compare_rows(public, metrics, baseline_id=ids[0] if baseline is None else baseline, mode=mode)
