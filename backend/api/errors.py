"""How errors become responses: the services' errors, request validation, the database's state and 405s.

Every error answers JSON: ``{"detail": message}``, or for a 422 ``{"detail": [{loc, msg, type}, ...]}``
with one entry per field at fault. ``add_error_handlers(app)`` installs them all.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException

from backend.api.deps import READ_METHODS
from backend.db import DatabaseBusy, is_unavailable, unavailable_reason
from backend.services.errors import (
    Conflict,
    InvalidConfig,
    InvalidParameter,
    InvalidStudy,
    InvalidSweep,
    NotFound,
    Unavailable,
)
from trainer.config import error_message

log = logging.getLogger(__name__)

# What a 422 echoes of the input it refuses: enough to recognise it, never a 30 MB body back.
ECHO_CHARACTERS = 200
# A 422's message, which may quote the input too, is cut at this length.
MESSAGE_CHARACTERS = 2000
ECHO_ITEMS = 20
RETRY_AFTER_SECONDS = 1
ALLOW_PROBES = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(InvalidConfig, _invalid_config)
    app.add_exception_handler(InvalidParameter, _invalid_parameter)
    app.add_exception_handler(InvalidStudy, _invalid_study)
    app.add_exception_handler(InvalidSweep, _invalid_sweep)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(DatabaseBusy, _database_busy)
    app.add_exception_handler(Unavailable, _unavailable)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(HTTPException, _http_error)


def _field_errors(errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"detail": [_error_shown(error) for error in errors]}, status_code=422)


def _error_shown(error: dict[str, Any]) -> dict[str, Any]:
    """One field's error: its input cut short as any echo is, its message kept whole up to a longer
    limit, for it says what to do (the missing weights' message names the file, where it goes, and
    the way out, in 400 characters per model)."""
    shown = _shown({key: value for key, value in error.items() if key != "msg"})
    shown["msg"] = _text(str(error["msg"]), limit=MESSAGE_CHARACTERS)
    return shown


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": _text(str(exc))}, status_code=404)


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": _text(str(exc))}, status_code=409)


async def _invalid_config(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidConfig)
    # FastAPI's own 422 shape, located at the field so a form can show the message beside it.
    return _field_errors(
        [
            {
                "loc": ["body", "overrides", field]
                if field in exc.overrides
                else ["body", "config", *field.split(".")],
                "msg": message,
                "type": "value_error",
            }
            for field, message in exc.errors.items()
        ]
    )


async def _invalid_parameter(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidParameter)
    return _field_errors([{"loc": list(exc.loc), "msg": exc.message, "type": "value_error"}])


async def _invalid_study(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidStudy)
    return _field_errors(
        [{"loc": ["body", *loc], "msg": message, "type": "value_error"} for loc, message in exc.errors.items()]
    )


async def _invalid_sweep(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidSweep)
    return _field_errors(
        [
            {"loc": ["body", "sweep", field], "msg": message, "type": "value_error"}
            for field, message in exc.errors.items()
        ]
    )


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        shown = {key: value for key, value in error.items() if key in ("loc", "msg", "type", "input")}
        # An unknown query parameter's message lists the ones the route takes (backend/api/query.py).
        if (error["type"], error["loc"][0]) != ("extra_forbidden", "query"):
            shown["msg"] = error_message(error)
        field, sep, message = shown["msg"].removeprefix("Value error, ").partition(": ")
        if error["type"] == "value_error" and sep and field.isidentifier():
            # A model validator's "field: what is wrong" (see trainer.config.validation_errors).
            shown["loc"], shown["msg"] = [*error["loc"], field], message
        errors.append(shown)
    return _field_errors(errors)


async def _database_busy(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def database_unavailable_reason(request: Request, exc: DBAPIError) -> str:
    """Why the database refused ``request``, logged as one warning line: a fault of the machine, not
    of the code, so no traceback."""
    reason = unavailable_reason(exc)
    log.warning("%s %s: database unavailable: %s", request.method, request.url.path, reason)
    return reason


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database refused the request (read-only, full, locked too long, unreachable): nothing was
    changed, and a later try works once the cause is gone; the connections that saw it are dropped."""
    assert isinstance(exc, DBAPIError)
    reason = database_unavailable_reason(request, exc)
    action = "read" if request.method in READ_METHODS else "written"
    unchanged = "" if request.method in READ_METHODS else " nothing was changed;"
    return JSONResponse(
        {"detail": f"the database cannot be {action} right now ({reason});{unchanged} try again shortly"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if is_unavailable(exc):
        return await _database_unavailable(request, exc)
    raise exc


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors; a 405 lists in ``Allow`` every method the path has, not only the
    methods of the first route that matched it."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the API documents for this path. A path that one template names literally
    (/studies/preview) is that template's alone, though /studies/{study_id} would match it too."""
    paths: dict[str, dict[str, Any]] = request.app.openapi()["paths"]
    matching = [template for template in paths if _template_pattern(template).fullmatch(request.url.path)]
    literal = [template for template in matching if "{" not in template]
    methods = {method.upper() for template in literal or matching for method in paths[template]}
    return [method for method in ALLOW_PROBES if method in methods]


def _template_pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)))


# --- what an error echoes -------------------------------------------------------------------------


def _shown(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON can carry it: non-finite floats as text (JSON has no NaN), long strings and
    containers cut short, text that is not valid Unicode (lone surrogates) repaired."""
    value = jsonable_encoder(value) if depth == 0 else value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list):
        shown = [_shown(item, depth + 1) for item in value[:ECHO_ITEMS]]
        return shown + ([f"... {len(value) - ECHO_ITEMS} more"] if len(value) > ECHO_ITEMS else [])
    if isinstance(value, dict):
        items = list(value.items())
        shown_items = {_text(str(key)): _shown(item, depth + 1) for key, item in items[:ECHO_ITEMS]}
        if len(items) > ECHO_ITEMS:
            shown_items["..."] = f"{len(items) - ECHO_ITEMS} more keys"
        return shown_items
    return value


def _text(text: str, limit: int = ECHO_CHARACTERS) -> str:
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
