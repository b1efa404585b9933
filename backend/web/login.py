"""The log-in page, which turns a token into a browser session cookie, and log-out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from backend.api.deps import SessionDep, SettingsDep
from backend.api.query import KnownQueryOnly
from backend.security import auth
from backend.services import tokens
from backend.settings import Settings
from backend.web.pages import templates

router = APIRouter(include_in_schema=False, dependencies=[KnownQueryOnly])


@dataclass(frozen=True)
class LoginForm:
    token: str
    next: str


async def _login_form(request: Request) -> LoginForm:
    """The form's fields (application/x-www-form-urlencoded, as a plain HTML form posts them); a body
    that is no such form reads as an empty one, which the page answers as a bad token."""
    try:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    except ValueError:  # more fields than any log-in form has
        fields = {}
    return LoginForm(token=fields.get("token", [""])[0].strip(), next=auth.safe_next(fields.get("next", ["/"])[0]))


def _login_page(
    request: Request, settings: Settings, *, next_path: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    context = {"page": "login", "next": next_path, "error": error, "session_days": settings.session_days}
    return templates.TemplateResponse(request, "login.html", context, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, settings: SettingsDep, next: str = "/") -> HTMLResponse:
    return _login_page(request, settings, next_path=auth.safe_next(next))


@router.post("/login")
def log_in(
    request: Request, form: Annotated[LoginForm, Depends(_login_form)], session: SessionDep, settings: SettingsDep
) -> Response:
    lifetime = timedelta(days=settings.session_days)
    opened = tokens.open_login(session=session, token_secret=form.token, lifetime=lifetime) if form.token else None
    if opened is None:
        return _login_page(
            request, settings, next_path=form.next, error="That token is not valid (or was revoked).", status_code=401
        )
    response = RedirectResponse(form.next, status_code=303)
    auth.set_session_cookie(response, secret=opened[0], lifetime=lifetime, secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def log_out(request: Request, session: SessionDep) -> Response:
    if cookie_secret := request.cookies.get(auth.SESSION_COOKIE):
        tokens.close_login(session=session, cookie_secret=cookie_secret)
    response = RedirectResponse(auth.LOGIN_PATH, status_code=303)
    auth.clear_session_cookie(response)
    return response
