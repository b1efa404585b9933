"""The error responses each route documents, with the bodies backend.api.errors sends."""

from __future__ import annotations

from typing import Any

from fastapi.responses import PlainTextResponse

from backend.schemas.errors import ErrorPublic, ValidationErrorPublic

_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}}

_ERRORS: dict[int, dict[str, Any]] = {
    400: {"model": ErrorPublic, "description": "the body could not be read (not UTF-8 or not JSON)"},
    404: {"model": ErrorPublic, "description": "no run or study has this id"},
    409: {"model": ErrorPublic, "description": "the run's or study's state forbids this change"},
    413: {"model": ErrorPublic, "description": "the body is larger than the server reads"},
    422: {"model": ValidationErrorPublic, "description": "a field is invalid; loc names it"},
    503: {
        "model": ErrorPublic,
        "description": "the database is busy or cannot be written (or read) right now; nothing was changed",
        "headers": _RETRY_AFTER,
    },
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documentation of these error statuses, for a route's ``responses``."""
    return {status: _ERRORS[status] for status in statuses}


def json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``errors`` for a route whose own responses are not JSON (FastAPI would file a ``model`` under the
    route's media type): the bodies named by reference instead, under application/json."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response = dict(_ERRORS[status])
        schema = {"$ref": f"#/components/schemas/{response.pop('model').__name__}"}
        documented[status] = {**response, "content": {"application/json": {"schema": schema}}}
    return documented


READ = errors(422, 503)
READ_ONE = errors(404, 422, 503)
BODY = errors(400, 413, 422, 503)
CHANGE = errors(404, 409, 422, 503)


class CsvResponse(PlainTextResponse):
    media_type = "text/csv"


CSV = json_errors(404, 422, 503)
# OpenAPI 3.1 describes each event of a text/event-stream with its schema.
EVENT_STREAM = {
    "description": "`epoch` per new epoch row (id = epoch), `status` per status change, `end` when the run is final",
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "properties": {
                    "event": {"enum": ["status", "epoch", "end"]},
                    "data": {
                        "type": "string",
                        "description": "JSON: a RunPublic (status, end) or an EpochMetricPublic",
                    },
                    "id": {"type": "string", "description": "the epoch the client has seen"},
                    "retry": {"type": "integer", "description": "milliseconds before a reconnect"},
                },
            }
        }
    },
}
