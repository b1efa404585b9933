"""Unknown query parameters are refused, not ignored: ``/api/v1/runs?tricks.mixup_alpha=0.2`` would
otherwise list every run, and a script would believe it had filtered.

``KnownQueryOnly`` is a router dependency: it compares the request's query parameters with those the
matched route declares, its dependencies' included (paging, the compare page's ``runs``), and answers
a 422 naming each one it does not know, as FastAPI answers any other bad parameter.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


def declared_query(dependant: Dependant) -> frozenset[str]:
    """The query parameters ``dependant`` reads, by the names a request sends (aliases)."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= declared_query(sub)
    return frozenset(names)


def unknown_query_message(known: frozenset[str]) -> str:
    return f"unknown query parameter; known: {', '.join(sorted(known)) or 'none'}"


async def known_query_only(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = declared_query(route.dependant)
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in known]
    if unknown:
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "input": request.query_params[name],
                    "msg": unknown_query_message(known),
                }
                for name in unknown
            ]
        )


KnownQueryOnly = Depends(known_query_only)
