"""``SecurityMiddleware``: the one place every request is checked, in this order:

1. its ``Host`` is one this server answers (400 otherwise: DNS rebinding);
2. a state-changing request comes from this server's own pages or from a script (403 otherwise);
3. it carries a valid token or log-in, unless the server is open or the path is (401 otherwise;
   a page request is sent to the log-in page instead).

Every response, these refusals included, gets the security headers. Routes read the outcome as
``request.state.principal`` (``auth.current_principal``) and never check tokens themselves.
"""

from __future__ import annotations

import inspect
from urllib.parse import quote

import anyio.to_thread
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.db import Database
from backend.hosts import AllowedHosts, is_loopback
from backend.security import auth, origin
from backend.security.headers import with_security_headers
from backend.settings import Settings


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings, database: Database):
        self.app = app
        self.database = database
        self.allowed_hosts = AllowedHosts.for_bind(settings.bind_host, settings.allowed_hosts)
        self.open_without_tokens = is_loopback(settings.bind_host) or settings.insecure_no_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # the app serves no websockets
            await send({"type": "websocket.close", "code": 1008})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(list(message.get("headers", [])))
            await send(message)

        response = await self._check(Request(scope))
        if response is not None:
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    async def _check(self, request: Request) -> Response | None:
        """None when the request may go on (its principal then set); the refusal otherwise."""
        headers = request.headers
        host = headers.get("host")
        if not self.allowed_hosts.allows(host):
            return JSONResponse(
                {"detail": f"Host {host!r} is not one this server answers; add it to TRICKLAB_ALLOWED_HOSTS"},
                status_code=400,
            )
        cookie_secret = request.cookies.get(auth.SESSION_COOKIE) or None
        bearer = auth.bearer_secret(headers.get("authorization"))
        own_origin = origin.origin_of(f"{request.scope.get('scheme', 'http')}://{host}") or ""
        reason = origin.refusal(
            method=request.method,
            own_origin=own_origin,
            origin=headers.get("origin"),
            referer=headers.get("referer"),
            fetch_site=headers.get("sec-fetch-site"),
            by_cookie=cookie_secret is not None and bearer is None,
        )
        if reason is not None:
            return JSONResponse({"detail": reason}, status_code=403)
        if auth.is_open_path(request.url.path):
            request.scope.setdefault("state", {})["principal"] = auth.OPEN
            return None
        try:
            principal = await anyio.to_thread.run_sync(
                lambda: auth.authenticate(
                    database=self.database,
                    bearer=bearer,
                    cookie_secret=cookie_secret,
                    open_without_tokens=self.open_without_tokens,
                )
            )
        except auth.Unauthorized as exc:
            return _unauthorized(request, str(exc), stale_cookie=cookie_secret is not None)
        except DBAPIError as exc:
            # Raised out here, before any route, it would miss the app's handlers: a 500 and a traceback
            # where the routes answer 503 (JSON for the API, the error page for pages).
            return await _app_answer(request, exc)
        request.scope.setdefault("state", {})["principal"] = principal
        return None


async def _app_answer(request: Request, exc: Exception) -> Response:
    """The answer of the app's own handler for ``exc`` (which may re-raise it: a real bug stays a 500)."""
    handlers = request.app.exception_handlers
    handler = next((handlers[kind] for kind in type(exc).__mro__ if kind in handlers), None)
    if handler is None:
        raise exc
    response = handler(request, exc)
    return await response if inspect.isawaitable(response) else response


def _unauthorized(request: Request, message: str, *, stale_cookie: bool) -> Response:
    response: Response
    # A browser opening a page is sent to the log-in page; scripts and the pages' fetches get the 401.
    if request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", ""):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(f"{auth.LOGIN_PATH}?next={quote(target, safe='')}", status_code=303)
    else:
        response = JSONResponse({"detail": message}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    if stale_cookie:
        auth.clear_session_cookie(response)
    return response
