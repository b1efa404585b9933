"""What the client raises: one exception per kind of answer, mirroring the server's own errors
(``backend/services/errors.py``) so that a script catches ``NotFound`` or ``Invalid``, not status codes."""

from __future__ import annotations

from typing import Any

import httpx

# Where a 422's ``loc`` starts; the rest of it is the field, e.g. ["body", "config", "epochs"].
REQUEST_PARTS = ("body", "query", "path", "header")


class TricklabError(Exception):
    """Any answer that is not a success; ``status`` is None when no answer came."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None):
        super().__init__(message)
        self.status = status
        self.detail = detail


class Unreachable(TricklabError):
    """No answer: the server is not running, not reachable, or too slow."""


class NotFound(TricklabError):
    """404: an id that names nothing."""


class Conflict(TricklabError):
    """409: a state change the resource's state forbids (cancelling a finished run, deleting a running one)."""


class Invalid(TricklabError):
    """422: ``fields`` maps each field at fault, dotted (``config.epochs``, ``run_ids``), to its message."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None, fields: dict[str, str]):
        super().__init__(message, status=status, detail=detail)
        self.fields = fields


class Refused(TricklabError):
    """401 or 403: a missing, wrong or revoked token, or a write the server does not allow."""


class Busy(TricklabError):
    """503: the database is busy or cannot be written; nothing was changed. Try again after ``retry_after`` s."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None, retry_after: float | None):
        super().__init__(message, status=status, detail=detail)
        self.retry_after = retry_after


class Incomplete(TricklabError):
    """A download that ended with another size than the server announced (the connection dropped, or the
    file changed meanwhile); ``path`` keeps what arrived, and the next try resumes from it."""


def error_for(response: httpx.Response) -> TricklabError:
    """The exception an unsuccessful ``response`` stands for."""
    detail = _detail(response)
    where = f"{response.request.method} {response.request.url.path}"
    status = response.status_code
    if status == 422:
        fields = invalid_fields(detail)
        text = "; ".join(f"{field}: {message}" for field, message in fields.items()) or str(detail)
        return Invalid(f"{where}: {text}", status=status, detail=detail, fields=fields)
    message = f"{where} answered {status}: {detail}"
    if status == 404:
        return NotFound(message, status=status, detail=detail)
    if status == 409:
        return Conflict(message, status=status, detail=detail)
    if status in (401, 403):
        return Refused(message, status=status, detail=detail)
    if status == 503:
        return Busy(message, status=status, detail=detail, retry_after=_seconds(response.headers.get("Retry-After")))
    return TricklabError(message, status=status, detail=detail)


def invalid_fields(detail: Any) -> dict[str, str]:
    """A 422's ``[{loc, msg, type}, ...]`` as dotted field -> message."""
    if not isinstance(detail, list):
        return {}
    fields: dict[str, str] = {}
    for error in detail:
        loc = [str(part) for part in error.get("loc", [])]
        if len(loc) > 1 and loc[0] in REQUEST_PARTS:
            loc = loc[1:]
        field, message = ".".join(loc), str(error.get("msg", ""))
        fields[field] = f"{fields[field]}; {message}" if field in fields else message
    return fields


def _detail(response: httpx.Response) -> Any:
    try:
        return response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return response.text[:500]


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the server sends seconds, a proxy might not
