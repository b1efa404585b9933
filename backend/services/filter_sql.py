"""The runs filter language (``filter_language``) compiled to one SQLAlchemy condition on ``runs``.

Every value the user wrote is a bound parameter; a field is one of a fixed table of columns, or a
config key whose path is bound too (but on SQLite for the indexed keys, a fixed list: see
``backend.models.ConfigKey``). Namespaces:

- run fields: ``id name status kind priority study created_at started_at finished_at created_by
  worker attempt config_hash configuration``;
- ``config.<key>...``: the run's stored RunConfig, e.g. ``config.tricks.mixup_alpha``;
- ``peak.*`` (the epoch of the highest valid top-1), ``checkpoint.*`` (the kept checkpoint, lowest
  valid loss), ``test.*`` (the checkpoint on the test split): a finished run's stored figures;
  ``final.*``: the last stored epoch's row, also while the run trains;
- ``notes``: the run's Markdown notes, as text; ``tag`` (or ``tags``): one of the run's tags, so
  ``tag = "keep"`` finds the runs that carry it, ``tag != "keep"`` those that do not, ``tag exists``
  those with any tag (each a correlated EXISTS on ``run_tags``).

A comparison matches only values of its literal's type: a number compares with numbers alone,
guarded by the JSON value's own type (SQLite ``json_type``, PostgreSQL ``jsonb_typeof``) inside a
CASE, so that ``"abc"`` never compares as 0 on SQLite and one non-number never fails the query on
PostgreSQL. A missing value matches no comparison; ``not`` takes the exact complement.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    String,
    and_,
    bindparam,
    false,
    func,
    not_,
    or_,
    select,
    type_coerce,
)

from backend.models import ConfigKey, EpochMetric, Run, RunKind, RunStatus, RunTag
from backend.services.filter_language import (
    BoolOp,
    Compare,
    Exists,
    Field,
    FilterError,
    In,
    IsNull,
    Like,
    Node,
    Not,
    Value,
)

_NUMBER, _TEXT, _TIME, _CHOICE = "number", "text", "time", "choice"

# Run fields: the column and what its values are.
RUN_FIELDS: dict[str, tuple[Any, str]] = {
    "id": (Run.id, _NUMBER),
    "name": (Run.name, _TEXT),
    "status": (Run.status, _CHOICE),
    "kind": (Run.kind, _CHOICE),
    "priority": (Run.priority, _NUMBER),
    "study": (Run.study_id, _NUMBER),
    "attempt": (Run.attempt, _NUMBER),
    "created_at": (Run.created_at, _TIME),
    "started_at": (Run.started_at, _TIME),
    "finished_at": (Run.finished_at, _TIME),
    "created_by": (Run.created_by, _TEXT),
    "worker": (Run.worker, _TEXT),
    "config_hash": (Run.config_hash, _TEXT),
    "configuration": (Run.configuration_hash, _TEXT),
    "notes": (Run.notes, _TEXT),
}
CHOICES = {"status": [s.value for s in RunStatus], "kind": [k.value for k in RunKind]}

# A finished run's stored figures, by namespace.
FIGURES: dict[str, dict[str, Any]] = {
    "peak": {"epoch": Run.peak_epoch, "valid_top1": Run.peak_valid_top1, "valid_top5": Run.peak_valid_top5},
    "checkpoint": {
        "epoch": Run.checkpoint_epoch,
        "valid_loss": Run.checkpoint_valid_loss,
        "valid_top1": Run.checkpoint_valid_top1,
        "valid_top5": Run.checkpoint_valid_top5,
    },
    "test": {"loss": Run.test_loss, "top1": Run.test_top1, "top5": Run.test_top5},
}
FINAL_FIGURES = (
    "epoch",
    "train_loss",
    "train_top1",
    "train_top5",
    "valid_loss",
    "valid_top1",
    "valid_top5",
    "lr",
    "seconds",
    "images_per_s",
)
# A run's tags live in run_tags, several per run: a condition on one of them is an EXISTS.
TAG_FIELDS = frozenset({"tag", "tags"})
CONFIG_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")
OPERATORS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def field_names() -> str:
    figures = [f"{space}.{name}" for space, names in FIGURES.items() for name in names]
    finals = [f"final.{name}" for name in FINAL_FIGURES]
    return ", ".join([*RUN_FIELDS, "tag", "config.<key>", *figures, *finals])


def _kind_of(value: Value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return _NUMBER
    return "string"


def _final(name: str) -> ColumnElement[Any]:
    # The last epoch's row, through the unique (run_id, epoch) index.
    column = getattr(EpochMetric, name)
    return (
        select(column).where(EpochMetric.run_id == Run.id).order_by(EpochMetric.epoch.desc()).limit(1).scalar_subquery()
    )


class _ConfigKey(ConfigKey):
    """A config key the filter names: letters, digits and _ only (its path is bound all the same, but
    for SQLite's indexed keys)."""

    def __init__(self, keys: tuple[str, ...], dialect: str):
        for key in keys:
            if not CONFIG_KEY.fullmatch(key):
                raise FilterError(f"config key {key!r}: letters, digits and _ only")
        super().__init__(keys, dialect)


def _boolean_text(value: bool) -> str:
    return "true" if value else "false"


def _like(column: ColumnElement[Any], node: Like, sqlite: bool) -> ColumnElement[bool]:
    if node.case_sensitive and sqlite:
        # SQLite's LIKE ignores ASCII case; GLOB does not. The same pattern, in GLOB's words.
        return column.op("GLOB", is_comparison=True)(bindparam(None, _glob(node.pattern), type_=String))
    pattern = bindparam(None, node.pattern, type_=String)
    return column.like(pattern, escape="\\") if node.case_sensitive else column.ilike(pattern, escape="\\")


def _glob(pattern: str) -> str:
    out, chars = [], iter(pattern)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "\\")
            out.append(f"[{escaped}]" if escaped in "*?[" else escaped)
        elif char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        elif char in "*?[":
            out.append(f"[{char}]")
        else:
            out.append(char)
    return "".join(out)


class _Compiler:
    def __init__(self, dialect: str):
        self.dialect = dialect

    def node(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, BoolOp):
            # Cheapest first: SQLite tests the terms in the order written and stops at the first that
            # decides, so a column comparison spares most rows a JSON parse (PostgreSQL orders by cost itself).
            parts = [self.node(operand) for operand in sorted(node.operands, key=_cost)]
            return and_(*parts) if node.op == "and" else or_(*parts)
        if isinstance(node, Not):
            # Two-valued: a comparison with a missing value is false, so its negation is true.
            return not_(func.coalesce(self.node(node.operand), false(), type_=Boolean))
        return self.predicate(node)

    def predicate(self, node: Compare | In | Like | Exists | IsNull) -> ColumnElement[bool]:
        field = node.field
        space = field.path[0]
        if space in TAG_FIELDS and len(field.path) == 1:
            return self.tag(field, node)
        if space == "config":
            if len(field.path) == 1:
                raise FilterError("config: name a key, e.g. config.optim.lr")
            return self.config(_ConfigKey(field.path[1:], self.dialect), node)
        column, kind = self.column(field)
        return self.plain(field, column, kind, node)

    def tag(self, field: Field, node: Compare | In | Like | Exists | IsNull) -> ColumnElement[bool]:
        """Whether the run carries a tag that matches; a negated test (!=, not in, not like) is that it
        carries none, and ``tag exists`` / ``is not null`` that it carries any."""
        if isinstance(node, Compare) and node.value is None:
            node = IsNull(field, negated=node.op != "=")
        negated = False
        if isinstance(node, Exists | IsNull):
            matching = None
            negated = isinstance(node, IsNull) and not node.negated
        elif isinstance(node, Compare):
            negated = node.op == "!="
            matching = self.plain(field, RunTag.tag, _TEXT, replace(node, op="=") if negated else node)
        else:
            negated = node.negated
            matching = self.plain(field, RunTag.tag, _TEXT, replace(node, negated=False))
        tagged = select(RunTag.run_id).where(RunTag.run_id == Run.id)
        if matching is not None:
            tagged = tagged.where(matching)
        return not_(tagged.exists()) if negated else tagged.exists()

    def column(self, field: Field) -> tuple[Any, str]:
        path = field.path
        if len(path) == 1 and path[0] in RUN_FIELDS:
            return RUN_FIELDS[path[0]]
        if len(path) == 2 and path[1] in FIGURES.get(path[0], {}):
            return FIGURES[path[0]][path[1]], _NUMBER
        if len(path) == 2 and path[0] == "final" and path[1] in FINAL_FIGURES:
            return _final(path[1]), _NUMBER
        raise FilterError(f"unknown field {str(field)!r}; fields: {field_names()}")

    def plain(
        self, field: Field, column: Any, kind: str, node: Compare | In | Like | Exists | IsNull
    ) -> ColumnElement[bool]:
        if isinstance(node, Exists | IsNull):
            present = column.is_not(None)
            missing = column.is_(None)
            return missing if isinstance(node, IsNull) and not node.negated else present
        if kind == _CHOICE:
            column = type_coerce(column, String)  # its values checked below, not by the Enum type
        if isinstance(node, Like):
            if kind not in (_TEXT, _CHOICE):
                raise FilterError(f"{field} holds {kind}s: like and ilike take a text field")
            condition = _like(column, node, self.dialect == "sqlite")
            return not_(condition) if node.negated else condition
        values = node.values if isinstance(node, In) else (node.value,)
        if isinstance(node, Compare) and node.value is None:
            return self.plain(field, column, kind, IsNull(field, negated=node.op != "="))
        bound = [self.literal(field, kind, value) for value in values]
        if isinstance(node, In):
            return column.not_in(bound) if node.negated else column.in_(bound)
        if kind == _CHOICE and node.op not in ("=", "!="):
            raise FilterError(f"{field} compares with = or != only (or in, like)")
        return OPERATORS[node.op](column, bound[0])

    def literal(self, field: Field, kind: str, value: Value) -> Any:
        if kind == _NUMBER and _kind_of(value) == _NUMBER:
            return value
        if kind == _TEXT and isinstance(value, str):
            return value
        if kind == _CHOICE and isinstance(value, str):
            if value not in CHOICES[str(field)]:
                raise FilterError(f"{field} is one of {', '.join(CHOICES[str(field)])}, not {value!r}")
            return value
        if kind == _TIME and isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                example = '"2026-12-07" or "2026-12-07T10:30Z"'
                raise FilterError(f"{field}: {value!r} is no ISO date, e.g. {example}") from None
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        wants = {_NUMBER: "a number", _TEXT: "a quoted string", _CHOICE: "a quoted string", _TIME: "a quoted ISO date"}
        raise FilterError(f"{field} compares with {wants[kind]}, not {value!r}")

    def config(self, key: _ConfigKey, node: Node) -> ColumnElement[bool]:
        if isinstance(node, Exists):
            return key.exists()
        if isinstance(node, IsNull):
            missing = or_(key.is_kind("null"), not_(key.exists()))
            return not_(missing) if node.negated else missing
        if isinstance(node, Like):
            condition = _like(key.value("string"), node, self.dialect == "sqlite")
            return and_(key.is_kind("string"), not_(condition)) if node.negated else condition
        if isinstance(node, Compare):
            if node.value is None:
                return self.config(key, IsNull(node.field, negated=node.op != "="))
            kind = _kind_of(node.value)
            if kind == "boolean":
                if node.op not in ("=", "!="):
                    raise FilterError(f"{node.field}: true and false compare with = or != only")
                return OPERATORS[node.op](key.value(kind), _boolean_text(bool(node.value)))
            return OPERATORS[node.op](key.value(kind), bindparam(None, node.value, type_=_bind_type(kind)))
        assert isinstance(node, In)
        by_kind: dict[str, list[Any]] = {}
        for value in node.values:
            if value is None:
                raise FilterError(f"{node.field}: null is no value of an in list; use is null")
            kind = _kind_of(value)
            by_kind.setdefault(kind, []).append(_boolean_text(value) if isinstance(value, bool) else value)
        matches = or_(*(key.value(kind).in_(values) for kind, values in by_kind.items()))
        # not in: a value of the list's types that is none of them; a missing key matches neither.
        return and_(or_(*(key.is_kind(kind) for kind in by_kind)), not_(matches)) if node.negated else matches


def _cost(node: Node) -> int:
    """How dear a test is per row: 0 a column of the run's row, 1 a config key (a JSON read), 2 a
    subquery (a tag, the final epoch)."""
    if isinstance(node, BoolOp):
        return max(_cost(operand) for operand in node.operands)
    if isinstance(node, Not):
        return _cost(node.operand)
    space = node.field.path[0]
    if space == "config":
        return 1
    return 2 if space in TAG_FIELDS or space == "final" else 0


def _bind_type(kind: str) -> Any:
    return Float() if kind == _NUMBER else String()


def compile_filter(node: Node | None, *, dialect: str) -> ColumnElement[bool] | None:
    """The condition for ``node`` on ``dialect`` (``sqlite`` or ``postgresql``); None for no filter."""
    return None if node is None else _Compiler(dialect).node(node)
