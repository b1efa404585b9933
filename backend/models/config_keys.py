"""Reads of a run's stored config keys, shared by the runs filter and the indexes built on them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ColumnElement, Float, Index, String, bindparam, case, func, literal_column
from sqlalchemy.sql.elements import Grouping

from backend.models.runs import Run

# The config keys a study's ablations filter on most, and the JSON type their values hold. Each one's
# filter expression is indexed (CONFIG_INDEXES): a filter on them reads the index, and its statistics
# tell the planner how many runs match, so that it pages down the sort index rather than sorting
# every match where most do (SQLite's made by backend.statistics).
INDEXED_CONFIG_KEYS: dict[tuple[str, ...], str] = {
    ("seed",): "number",
    ("model", "arch"): "string",
    ("optim", "name"): "string",
    ("optim", "lr"): "number",
    ("schedule", "name"): "string",
    ("tricks", "label_smoothing"): "number",
    ("tricks", "mixup_alpha"): "number",
}


class ConfigKey:
    """One key of a run's stored config (``keys``, its path) on ``dialect``, each read guarded by the
    value's JSON type: the runs filter's reads (backend.services.filter_sql) and the expressions of
    CONFIG_INDEXES, one and the same, so that the planner matches them.

    The path is bound, except on SQLite for a key of INDEXED_CONFIG_KEYS (a fixed list, never the
    user's text): SQLite's index expressions cannot hold a parameter and its planner matches a query's
    expression to an index's only where both hold the same literals, so there the path and the type
    names are written into the SQL."""

    def __init__(self, keys: tuple[str, ...], dialect: str):
        self.keys = keys
        self.sqlite = dialect == "sqlite"
        self.literal = self.sqlite and keys in INDEXED_CONFIG_KEYS

    def _path(self) -> Any:
        if self.literal:
            # Letters, digits and _ only (INDEXED_CONFIG_KEYS): nothing to quote.
            return literal_column("'$." + ".".join(self.keys) + "'", type_=String)
        return bindparam(None, self.keys, type_=JSON.JSONPathType())

    def _type(self) -> ColumnElement[str]:
        if self.sqlite:
            return func.json_type(Run.config, self._path(), type_=String)
        return func.jsonb_typeof(Run.config[self.keys], type_=String)

    def is_kind(self, kind: str) -> ColumnElement[bool]:
        sqlite_names = {"number": ("integer", "real"), "string": ("text",), "boolean": ("true", "false")}
        if self.sqlite:
            names = sqlite_names.get(kind, (kind,))
            if self.literal:
                return self._type().in_([literal_column(f"'{name}'", type_=String) for name in names])
            return self._type().in_(names)
        return self._type() == kind

    def exists(self) -> ColumnElement[bool]:
        return self._type().is_not(None)

    def value(self, kind: str) -> ColumnElement[Any]:
        """The value as ``kind`` where it is one, else NULL: CASE keeps the cast from any other value."""
        if kind == "boolean":
            raw = self._type() if self.sqlite else Run.config[self.keys].as_string()
        elif kind == "number":
            raw = (
                func.json_extract(Run.config, self._path(), type_=Float)
                if self.sqlite
                else Run.config[self.keys].as_float()
            )
        else:
            raw = (
                func.json_extract(Run.config, self._path(), type_=String)
                if self.sqlite
                else Run.config[self.keys].as_string()
            )
        return case((self.is_kind(kind), raw), else_=None)


# Per dialect, each written in that dialect's own expression (the same names on both).
CONFIG_INDEXES = {
    dialect: [
        # In parentheses: PostgreSQL indexes an expression other than a function call only so written.
        Index(f"ix_runs_config_{'_'.join(keys)}", Grouping(ConfigKey(keys, dialect).value(kind))).ddl_if(
            dialect=dialect
        )
        for keys, kind in INDEXED_CONFIG_KEYS.items()
    ]
    for dialect in ("postgresql", "sqlite")
}
