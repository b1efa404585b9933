"""Who a request comes from: a bearer token, a browser's log-in cookie, or nobody on an open server.

A server is open (no credential needed) only while no token was ever created and it is bound to
loopback or started with ``--insecure-no-auth``. Once a token exists every request needs one, loopback
included, and revoking tokens never opens the server again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from starlette.responses import Response

from backend.db import Database
from backend.services import tokens

SESSION_COOKIE = "tricklab_session"
LOGIN_PATH = "/login"
# Reachable without a credential: the log-in itself, the health check and the static files.
OPEN_PATHS = frozenset({"/api/v1/health", LOGIN_PATH, "/logout"})
OPEN_PREFIXES = ("/static/", "/vendor/")


@dataclass(frozen=True)
class Principal:
    token_name: str | None  # None on an open server
    by_cookie: bool = False


OPEN = Principal(None)


class Unauthorized(Exception):
    """No valid credential (401); the message says what to send."""


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def bearer_secret(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header; None for none, another scheme (a proxy's
    Basic log-in) or an empty one, so that ``-H "Authorization: Bearer $TRICKLAB_TOKEN"`` with the
    variable unset still works on an open server."""
    scheme, _, secret = (authorization or "").strip().partition(" ")
    return (secret.strip() or None) if scheme.lower() == "bearer" else None


def authenticate(
    *, database: Database, bearer: str | None, cookie_secret: str | None, open_without_tokens: bool
) -> Principal:
    with database.session() as session:
        if bearer is not None:
            token = tokens.token_for_secret(session=session, secret=bearer)
            if token is None:
                raise Unauthorized("invalid or revoked token")
            return Principal(token.name)
        if cookie_secret is not None:
            token = tokens.token_for_login(session=session, cookie_secret=cookie_secret)
            if token is not None:
                return Principal(token.name, by_cookie=True)
        if not tokens.any_token(session=session):
            if open_without_tokens:
                return OPEN
            raise Unauthorized(
                "this server listens beyond loopback and has no token yet: "
                "create one on the server with `tricklab token create NAME`"
            )
        if tokens.any_active_token(session=session):
            raise Unauthorized("a token is needed: send Authorization: Bearer TOKEN, or log in at /login")
        raise Unauthorized("every token of this server was revoked: create one with `tricklab token create NAME`")


def current_principal(request: Request) -> Principal:
    """The request's principal, as the security middleware found it."""
    return getattr(request.state, "principal", OPEN)


def creator(request: Request) -> str | None:
    """The token name a created run or study records."""
    return current_principal(request).token_name


def safe_next(path: str | None) -> str:
    """Where to go after logging in: a path of this server, never another site (``//host`` and
    ``/\\host`` are other sites to a browser, which also drops tabs and newlines from URLs)."""
    if (
        not path
        or not path.startswith("/")
        or path.startswith("//")
        or any(char == "\\" or char < " " or char == "\x7f" for char in path)
        or path.partition("?")[0] in (LOGIN_PATH, "/logout")
    ):
        return "/"
    return path


def set_session_cookie(response: Response, *, secret: str, lifetime: timedelta, secure: bool) -> None:
    # HttpOnly: no script reads it; SameSite=Strict: no other site's page or link sends it.
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
