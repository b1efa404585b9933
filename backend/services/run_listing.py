"""The runs list: filtered (``filter_language`` compiled by ``filter_sql``), sorted by any of its
columns, paged by keyset, and the seeds of one configuration grouped into one row.

A page ends with a cursor (the last row's sort value and id); the next page starts after it, so a
page costs the same at run 10 as at run 10,000 and a run queued meanwhile shifts nothing. Sort keys
are the filter's own field names; a figure missing until the run finishes sorts as the lowest.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, bindparam, func, literal_column, select, tuple_, type_coerce
from sqlalchemy.orm import Session

from backend.models import SORT_KEYS, Run, RunKind, RunStatus
from backend.reports.stats import Spread, spread
from backend.schemas.runs import FigureSpread, RunGroupPublic
from backend.services.errors import InvalidParameter
from backend.services.filter_language import FilterError, parse_filter
from backend.services.filter_sql import compile_filter
from trainer.config import CONTROL_CHARACTERS

# Sort names (the filter's fields) and the expression each orders by.
SORTS: dict[str, Any] = {
    "id": Run.id,
    "name": Run.name,
    # As text: a cursor's value is bound as written, not through the Enum type.
    "status": type_coerce(Run.status, String),
    "kind": type_coerce(Run.kind, String),
    "priority": Run.priority,
    "created_at": Run.created_at,
    "peak.valid_top1": SORT_KEYS["peak_valid_top1"],
    "peak.valid_top5": SORT_KEYS["peak_valid_top5"],
    "test.top1": SORT_KEYS["test_top1"],
    "test.top5": SORT_KEYS["test_top5"],
    "checkpoint.valid_loss": SORT_KEYS["checkpoint_valid_loss"],
}
SORT_PATTERN = "^-?(" + "|".join(name.replace(".", r"\.") for name in SORTS) + ")$"
SORT_HELP = f"a column, descending with a leading -: {', '.join(SORTS)}"
# The figures a group shows as mean ± std over its seeds.
GROUP_FIGURES = ("peak_valid_top1", "peak_valid_top5", "test_top1", "test_top5")


@dataclass(frozen=True)
class Sort:
    name: str
    descending: bool

    @classmethod
    def of(cls, text: str) -> Sort:
        name = text.removeprefix("-")
        if name not in SORTS:
            raise InvalidParameter(("query", "sort"), SORT_HELP)
        return cls(name, text.startswith("-"))

    @property
    def key(self) -> Any:
        return SORTS[self.name]


def run_condition(*, session: Session, text: str | None) -> ColumnElement[bool] | None:
    """The filter ``text`` as a condition on runs; a 422 naming ``filter`` where it cannot be used."""
    try:
        return compile_filter(parse_filter(text or ""), dialect=session.get_bind().dialect.name)
    except FilterError as exc:
        raise InvalidParameter(("query", "filter"), str(exc)) from None


def _encode(sort: Sort, value: Any, run_id: int) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    elif hasattr(value, "value"):  # an enum member
        value = value.value
    raw = json.dumps([sort.name, value, run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(sort: Sort, cursor: str) -> tuple[Any, int]:
    bad = InvalidParameter(("query", "cursor"), "not a cursor of this sort: pass next_cursor from the previous page")
    try:
        name, value, run_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error):
        raise bad from None
    if name != sort.name or not isinstance(run_id, int) or isinstance(run_id, bool):
        raise bad
    if sort.name == "created_at":
        try:
            value = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise bad from None
    elif isinstance(value, bool) or not isinstance(value, int | float | str):
        raise bad
    return value, run_id


# GET /runs' ``archived`` parameter as Where.archived.
ARCHIVED = {"false": False, "true": True, "any": None}


@dataclass(frozen=True)
class Where:
    """What a list keeps: the filter and the list's older plain parameters, all of them at once."""

    filter_text: str | None = None
    statuses: Sequence[RunStatus] = ()
    kinds: Sequence[RunKind] = ()
    name: str | None = None  # part of the name, any case
    study_id: int | None = None
    created_by: str | None = None
    archived: bool | None = False  # False: leave archived runs out; True: only them; None: both

    def conditions(self, session: Session) -> list[ColumnElement[bool]] | None:
        """The conditions on runs; None where none can match."""
        conditions: list[ColumnElement[bool]] = []
        condition = run_condition(session=session, text=self.filter_text)
        if self.archived is not None:
            conditions.append(Run.archived_at.is_not(None) if self.archived else Run.archived_at.is_(None))
        if self.statuses:
            conditions.append(Run.status.in_(self.statuses))
        if self.kinds:
            conditions.append(Run.kind.in_(self.kinds))
        if self.name and CONTROL_CHARACTERS.search(self.name):
            return None  # no run's name holds one (RunConfig refuses them); PostgreSQL cannot even compare NUL
        if self.name:
            escaped = self.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(Run.name.ilike(f"%{escaped}%", escape="\\"))
        if self.study_id is not None:
            conditions.append(Run.study_id == self.study_id)
        if self.created_by is not None:
            conditions.append(Run.created_by == self.created_by)
        # The filter last: the columns above are cheaper to test than its JSON reads and subqueries.
        return conditions if condition is None else [*conditions, condition]


def list_runs(
    *,
    session: Session,
    where: Where = Where(),
    sort: str = "-id",
    cursor: str | None = None,
    skip: int = 0,
    limit: int = 100,
) -> tuple[list[Run], int, str | None]:
    """One page of the runs ``where`` keeps in ``sort``'s order (after ``cursor``, then ``skip`` more),
    the number of them over all pages, and the cursor of the next page (None on the last)."""
    order = Sort.of(sort)
    statements = list_statements(session=session, where=where, order=order, cursor=cursor, skip=skip, limit=limit)
    if statements is None:
        return [], 0, None
    count_statement, page_statement = statements
    count = session.scalar(count_statement) or 0
    rows = session.execute(page_statement).all()
    runs = [row.Run for row in rows[:limit]]
    next_cursor = _encode(order, rows[limit - 1].sort_value, runs[-1].id) if len(rows) > limit else None
    return runs, count, next_cursor


def list_statements(
    *, session: Session, where: Where, order: Sort, cursor: str | None, skip: int, limit: int
) -> tuple[Select[Any], Select[Any]] | None:
    """The queries of one page: the number of matches, and the page's rows (one more than ``limit``,
    to tell whether another page follows) with their sort values; None where nothing can match."""
    conditions = where.conditions(session)
    if conditions is None:
        return None
    count = select(func.count()).select_from(Run).where(*conditions)
    key = order.key
    statement = select(Run, key.label("sort_value")).where(*conditions)
    if cursor:
        value, run_id = _decode(order, cursor)
        after = tuple_(key, Run.id)
        bound = tuple_(bindparam(None, value, type_=key.type), bindparam(None, run_id, type_=Run.id.type))
        statement = statement.where(after < bound if order.descending else after > bound)
    ordering = (key.desc(), Run.id.desc()) if order.descending else (key.asc(), Run.id.asc())
    return count, statement.order_by(*ordering).offset(skip).limit(limit + 1)


@dataclass(frozen=True)
class RunGroup:
    """The runs of one configuration (its seeds), with each figure's mean and spread over them."""

    configuration: str
    runs: list[Run]
    figures: dict[str, Spread]


def _group_key() -> Any:
    # A run made without the seedless hash (by hand, before the migration could read it) is its own group.
    return func.coalesce(Run.configuration_hash, Run.config_hash)


def list_groups(
    *, session: Session, where: Where = Where(), sort: str = "-id", skip: int = 0, limit: int = 100
) -> tuple[list[RunGroup], int]:
    """The configurations among the runs ``where`` keeps, ordered by ``sort`` over each group (the
    mean of a figure, the newest id or date, the first name), offset-paged, and their number."""
    order = Sort.of(sort)
    conditions = where.conditions(session)
    if conditions is None:
        return [], 0
    group = _group_key().label("configuration")
    grouped = select(group).where(*conditions).group_by(group)
    count = session.scalar(select(func.count()).select_from(grouped.subquery())) or 0
    aggregate: Any
    if order.name in ("id", "created_at"):
        aggregate = func.max(order.key)
    elif order.name.count("."):
        # Groups with no figure yet go last, descending, as single runs do (PostgreSQL puts NULL first).
        aggregate = func.coalesce(func.avg(getattr(Run, order.name.replace(".", "_"))), literal_column("-1"))
    else:
        aggregate = func.min(order.key)
    direction = aggregate.desc() if order.descending else aggregate.asc()
    tie = func.max(Run.id).desc() if order.descending else func.max(Run.id).asc()
    keys = session.scalars(grouped.order_by(direction, tie).offset(skip).limit(limit)).all()
    members = session.scalars(select(Run).where(*conditions, _group_key().in_(keys)).order_by(Run.id.desc())).all()
    by_key: dict[str, list[Run]] = {key: [] for key in keys}
    for run in members:
        by_key[run.configuration_hash or run.config_hash].append(run)
    return [RunGroup(key, runs, _figures(runs)) for key, runs in by_key.items()], count


def _figures(runs: Sequence[Run]) -> dict[str, Spread]:
    return {
        name: spread([value for run in runs if (value := getattr(run, name)) is not None]) for name in GROUP_FIGURES
    }


def public_group(group: RunGroup) -> RunGroupPublic:
    statuses: dict[str, int] = {}
    for run in group.runs:
        statuses[run.status.value] = statuses.get(run.status.value, 0) + 1
    figures = {name: FigureSpread(n=s.n, mean=s.mean, std=s.std) for name, s in group.figures.items()}
    return RunGroupPublic(
        configuration=group.configuration,
        name=group.runs[0].name,
        count=len(group.runs),
        run_ids=[run.id for run in group.runs],
        seeds=[run.config.get("seed", 0) for run in group.runs],
        statuses=statuses,
        **figures,
    )
