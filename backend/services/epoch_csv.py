"""Epoch rows as CSV in long format: one line per run and epoch, every figure a column, for a study,
a comparison's runs or the runs a list's filters match. pandas reads it as it is
(``pd.read_csv(...).groupby("run_id")``), and a spreadsheet cannot run a name as a formula."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import EpochMetric, Run
from backend.reports.spreadsheet import to_csv
from backend.schemas.study_spec import StudySpec
from backend.services.errors import NotFound
from backend.services.run_listing import Where, list_runs
from backend.services.studies import get_study
from trainer.protocol import EPOCH_FIELDS

COLUMNS: tuple[str, ...] = ("run_id", "run_name", "study_id", "config_hash", "epoch", "attempt", *EPOCH_FIELDS)
MAX_LISTED_RUNS = 10_000  # a filtered list's CSV: the newest this many runs


def epochs_csv(*, session: Session, run_ids: Sequence[int]) -> str:
    """The epochs of ``run_ids``, in their order; NotFound naming the ids that name no run."""
    ids = list(dict.fromkeys(run_ids))
    runs = {
        run.id: run
        for run in session.execute(select(Run.id, Run.name, Run.study_id, Run.config_hash).where(Run.id.in_(ids)))
    }
    missing = [run_id for run_id in ids if run_id not in runs]
    if missing:
        raise NotFound(f"run{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} not found")
    order = {run_id: index for index, run_id in enumerate(ids)}
    columns = [
        EpochMetric.run_id,
        EpochMetric.epoch,
        EpochMetric.attempt,
        *(getattr(EpochMetric, f) for f in EPOCH_FIELDS),
    ]
    rows = session.connection().execute(select(*columns).where(EpochMetric.run_id.in_(ids))).mappings().all()
    lines = []
    for row in sorted(rows, key=lambda row: (order[row["run_id"]], row["epoch"])):
        run = runs[row["run_id"]]
        lines.append({**row, "run_name": run.name, "study_id": run.study_id, "config_hash": run.config_hash})
    return to_csv(lines, COLUMNS)


def study_epochs_csv(*, session: Session, study_id: int) -> str:
    """The epochs of every run of the study (those it reused from earlier studies too)."""
    study = get_study(session=session, study_id=study_id)
    ids = StudySpec.of(study).run_ids()
    present = set(session.scalars(select(Run.id).where(Run.id.in_(ids)))) if ids else set()
    return epochs_csv(session=session, run_ids=[run_id for run_id in ids if run_id in present])


def listed_epochs_csv(*, session: Session, where: Where) -> str:
    """The epochs of the runs the runs list keeps (``where``: its filter and parameters, the same code as
    GET /runs), newest run first (at most MAX_LISTED_RUNS)."""
    found, _, _ = list_runs(session=session, where=where, limit=MAX_LISTED_RUNS)
    return epochs_csv(session=session, run_ids=[run.id for run in found])
