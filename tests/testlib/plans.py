"""The database's plan for a SQLAlchemy statement, with its parameters bound as a request binds them
(so that PostgreSQL plans with their values, as it does for the request)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Executable
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ClauseElement


class _Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, statement: Any):
        self.statement = statement


@compiles(_Explain)
def _compile(element: _Explain, compiler: Any, **kw: Any) -> str:
    prefix = "EXPLAIN QUERY PLAN " if compiler.dialect.name == "sqlite" else "EXPLAIN "
    return prefix + compiler.process(element.statement, **kw)


def plan(session: Session, statement: Any) -> str:
    """EXPLAIN (PostgreSQL) or EXPLAIN QUERY PLAN (SQLite) of ``statement``, one line per row."""
    return "\n".join(" ".join(str(cell) for cell in row) for row in session.execute(_Explain(statement)))
