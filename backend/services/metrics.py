"""The epoch rows of many runs in the shape the charts take: one array per field per run.

The comparison pages draw every epoch of every run they show, so this is the API's largest answer.
It is built from one query selecting plain columns over the (run_id, epoch) index: no ORM objects,
no model per row; the rows of a run are turned into columns in one transposition and the answer is
serialized once. A set of finished runs cannot change, so its answer carries an ETag made from the
runs table alone, and a revalidation that matches is answered before any epoch row is read.

The row-shaped answer that scripts read (``epoch_rows``) is built the same way: plain columns, one
serialization.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Row, select, true
from sqlalchemy.orm import Session

from backend.models import FINAL_STATUSES, MAX_ID, EpochMetric, Run
from backend.schemas.compare import Mode
from backend.schemas.metrics import EpochMetricPublic
from backend.services.errors import InvalidParameter, NotFound
from trainer.protocol import EPOCH_FIELDS

FIELDS: tuple[str, ...] = EPOCH_FIELDS
COLUMNS_VERSION = "1"  # part of every ETag: a change of the answer's shape invalidates what browsers hold


@dataclass(frozen=True)
class MetricColumns:
    """``body`` is the JSON answer, or None when ``if_none_match`` matched ``etag`` (nothing changed);
    ``etag`` is None while any of the runs may still add rows."""

    body: bytes | None
    etag: str | None


def parse_fields(fields: str | None) -> tuple[str, ...]:
    """The comma-separated field names, in the order given; every field when none is named."""
    if fields is None:
        return FIELDS
    names = tuple(dict.fromkeys(name.strip() for name in fields.split(",") if name.strip()))
    if not names:
        raise InvalidParameter(("query", "fields"), f"name at least one of {', '.join(FIELDS)}, separated by commas")
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        raise InvalidParameter(
            ("query", "fields"),
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(FIELDS)}",
        )
    return names


def metric_columns(
    *, session: Session, run_ids: Sequence[int], fields: str | None = None, if_none_match: str | None = None
) -> MetricColumns:
    """The epoch rows of the runs that exist among ``run_ids`` as columns (``epoch`` first, then
    ``fields``), in the order given; ``missing`` names the ids that name no run. NotFound when none
    exists; InvalidParameter for an unknown field."""
    names = parse_fields(fields)
    ids = list(dict.fromkeys(run_ids))
    states = session.execute(select(Run.id, Run.status, Run.attempt, Run.finished_at).where(Run.id.in_(ids))).all()
    if not states:
        raise NotFound(f"run{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))} not found")
    found = {state.id for state in states}
    missing = [run_id for run_id in ids if run_id not in found]
    etag = None
    if all(state.status in FINAL_STATUSES for state in states):
        etag = _etag(sorted(map(tuple, states)), names, missing)
        if if_none_match is not None and etag in (tag.strip() for tag in if_none_match.split(",")):
            return MetricColumns(None, etag)

    present = [run_id for run_id in ids if run_id in found]
    columns = [EpochMetric.epoch, *(getattr(EpochMetric, name) for name in names)]
    # Core, not the ORM: plain tuples, no identity map or loading machinery for thousands of rows.
    rows = (
        session.connection()
        .execute(
            select(EpochMetric.run_id, *columns)
            .where(EpochMetric.run_id.in_(present))
            .order_by(EpochMetric.run_id, EpochMetric.epoch)
        )
        .all()
    )
    keys = ("epoch", *names)
    by_run = {
        run_id: dict(zip(keys, map(list, zip(*(row[1:] for row in group), strict=True)), strict=True))
        for run_id, group in itertools.groupby(rows, key=itemgetter(0))
    }
    empty: dict[str, list[object]] = {key: [] for key in keys}
    data = [{"run_id": run_id, **by_run.get(run_id, empty)} for run_id in present]
    body = {"fields": list(keys), "data": data, "count": len(data), "missing": missing}
    return MetricColumns(orjson.dumps(body), etag)


ROW_FIELDS: tuple[str, ...] = tuple(EpochMetricPublic.model_fields)


def epoch_rows(*, session: Session, run_ids: Sequence[int], since: int = 0) -> bytes:
    """The JSON of ``MetricsPublic``: every epoch row of the runs after epoch ``since``, ordered by run
    and epoch. NotFound naming the runs that do not exist."""
    wanted = sorted(set(run_ids))
    # Ids past the largest one name no run; PostgreSQL would not even compare them with the column.
    found = set(session.scalars(select(Run.id).where(Run.id.in_([run_id for run_id in wanted if run_id <= MAX_ID]))))
    missing = [run_id for run_id in wanted if run_id not in found]
    if missing:
        raise NotFound(f"run{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} not found")
    rows = (
        session.connection()
        .execute(
            select(*(getattr(EpochMetric, name) for name in ROW_FIELDS))
            .where(EpochMetric.run_id.in_(wanted), EpochMetric.epoch > since)
            .order_by(EpochMetric.run_id, EpochMetric.epoch)
        )
        .all()
    )
    data = [dict(zip(ROW_FIELDS, row, strict=True)) for row in rows]
    return orjson.dumps({"data": data, "count": len(data)})


def _etag(states: list[tuple[object, ...]], names: tuple[str, ...], missing: list[int]) -> str:
    """What the answer depends on when no run can add rows: each run's state, the fields, the absent ids."""
    key = json.dumps([COLUMNS_VERSION, states, names, missing], default=str)
    return f'"{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}"'


def picked_epochs(*, session: Session, run_ids: Sequence[int], mode: Mode) -> Sequence[Row[Any, Any, Any, Any]]:
    """Per run the epoch ``pick_epoch`` picks (run_id, epoch, valid_top1, valid_top5): the peak (highest
    valid top-1, earliest on a tie; epochs without one left out) or the last. Each run's epoch is found
    by a subquery that reads one entry of an index, (run_id, valid_top1, epoch) or (run_id, epoch),
    instead of every row of the run."""
    if not run_ids:
        return []
    scored = EpochMetric.valid_top1.is_not(None) if mode == "peak" else true()
    order = (EpochMetric.valid_top1.desc(), EpochMetric.epoch) if mode == "peak" else (EpochMetric.epoch.desc(),)
    picked = (
        select(EpochMetric.id)
        .where(EpochMetric.run_id == Run.id, scored)
        .order_by(*order)
        .limit(1)
        .correlate(Run)
        .scalar_subquery()
    )
    return (
        session.connection()
        .execute(
            select(EpochMetric.run_id, EpochMetric.epoch, EpochMetric.valid_top1, EpochMetric.valid_top5)
            .join(Run, EpochMetric.id == picked)
            .where(Run.id.in_(run_ids))
        )
        .all()
    )
