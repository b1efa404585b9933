"""An answer for every URL: outside /api, a page that says what went wrong and the way back.

The API keeps its JSON errors; a browser that asks for a page that does not exist (/runs/9999,
/nope), or names it with something that is not an id (/runs/abc, /compare?runs=abc), gets an HTML
page with the same status. ``install`` wraps the app's handlers, so the JSON answers stay theirs.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from backend.api.errors import RETRY_AFTER_SECONDS, database_unavailable_reason
from backend.db import DatabaseBusy, is_unavailable
from backend.services.errors import NotFound

API_PREFIX = "/api/"
# Path and query parameters of the pages, as a person would name what they typed.
PARAMETER_NOUNS = {
    "run_id": "a run id",
    "study_id": "a study id",
    "sweep_id": "a sweep id",
    "runs": "a list of run ids, e.g. 1,2,3",
}

MISSING = re.compile(r"(?P<kind>runs?|study|file) (?P<what>.+) not found")


def _is_page(request: Request) -> bool:
    return not request.url.path.startswith(API_PREFIX) and request.url.path != "/openapi.json"


def _missing_text(detail: str) -> str:
    """The services' "runs 3, 9 not found" as a sentence: "There are no runs #3, #9: ..."."""
    found = MISSING.fullmatch(detail)
    if found is None:
        return detail[:1].upper() + detail[1:] + "."
    kind, what = found["kind"], found["what"]
    if kind == "file":
        return f"There is no file {what} here."
    ids = ", ".join(f"#{part.strip()}" for part in what.split(","))
    subject = f"are no {kind} {ids}: they were" if kind == "runs" else f"is no {kind} {ids}: it was"
    return f"There {subject} deleted, or never made."


def _bad_value_text(exc: RequestValidationError) -> str:
    error = exc.errors()[0]
    name = str(error["loc"][-1])
    if error["type"] == "extra_forbidden":
        known = error["msg"].partition("known: ")[2]  # backend.api.query's message
        takes = "no parameters" if known == "none" else known
        return f"This page does not take “{name[:80]}” in its address (it takes {takes})."
    shown = str(error.get("input", ""))[:80]
    if name in PARAMETER_NOUNS:
        return f"“{shown}” is not {PARAMETER_NOUNS[name]}."
    return f"“{shown}” is not a valid {name}: {error['msg']}."


def install(app: FastAPI, templates: Jinja2Templates) -> None:
    """Answer page requests' errors with the error page, and leave the API's handlers to the API."""

    def page(
        request: Request, status: int, title: str, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        context = {"page": "error", "status": status, "title": title, "message": message}
        return templates.TemplateResponse(request, "error.html", context, status_code=status, headers=headers)

    def wrap(kind: type[Exception], answer: Callable[[Request, Any], Response]) -> None:
        fallback = app.exception_handlers[kind]

        async def handler(request: Request, exc: Any) -> Response:
            if _is_page(request):
                return answer(request, exc)
            response = fallback(request, exc)
            return await response if inspect.isawaitable(response) else response

        app.add_exception_handler(kind, handler)

    def not_found(request: Request, exc: NotFound) -> Response:
        return page(request, 404, "Not found", _missing_text(str(exc)))

    def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            return page(request, 404, "Page not found", f"Nothing lives at {request.url.path}.")
        return page(request, exc.status_code, "Not possible", str(exc.detail))

    def bad_value(request: Request, exc: RequestValidationError) -> Response:
        in_path = any(error["loc"][0] == "path" for error in exc.errors())
        return page(request, 404 if in_path else 400, "Not a valid address", _bad_value_text(exc))

    def database_away(request: Request, exc: DBAPIError) -> Response:
        if not is_unavailable(exc):
            raise exc  # a bug, not an outage: the 500 and its traceback say so
        reason = database_unavailable_reason(request, exc)
        message = f"The database is unreachable right now ({reason}). Reload this page in a moment."
        return page(request, 503, "Database unreachable", message, {"Retry-After": str(RETRY_AFTER_SECONDS)})

    def database_busy(request: Request, exc: DatabaseBusy) -> Response:
        message = f"The database is busy: {exc}."
        return page(request, 503, "Database busy", message, {"Retry-After": str(RETRY_AFTER_SECONDS)})

    wrap(NotFound, not_found)
    wrap(OperationalError, database_away)
    wrap(DBAPIError, database_away)
    wrap(DatabaseBusy, database_busy)
    wrap(HTTPException, http_error)
    wrap(RequestValidationError, bad_value)
