"""API tokens and browser log-ins: create, list and revoke tokens; find the token that a secret or a
log-in cookie stands for.

A secret is 256 random bits, shown once and stored only as its SHA-256. A slow password hash
(bcrypt, argon2) protects guessable passwords from brute force; a 256-bit random secret cannot be
guessed however fast its hash is, while a slow hash would cost a tenth of a second of CPU on every
API request. A log-in cookie holds a secret of its own, not the token: logging out or the session's
expiry ends it without touching the token, and revoking the token ends all of them.

Functions take the session and commit what they change, as the runs service does.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.models import LoginSession, Token, utcnow
from backend.services.errors import Conflict, InvalidParameter, NotFound

TOKEN_PREFIX = "tlab_"  # makes a leaked token recognisable to secret scanners and to people
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
NAME_RULE = "1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: datetime
    revoked_at: datetime | None
    logins: int  # browser sessions open now


def _check_name(name: str) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidParameter(("token name",), f"{name!r}: use {NAME_RULE}")


def create_token(*, session: Session, name: str) -> str:
    """A new token's secret, the only time it exists outside the caller's hands. A revoked token's
    name may be given a new token; an active one's may not."""
    _check_name(name)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = session.scalars(select(Token).where(Token.name == name)).one_or_none()
    if token is not None and token.revoked_at is None:
        raise Conflict(
            f"a token named {name!r} exists; revoke it first (tricklab token revoke {name}) or pick another name"
        )
    if token is None:
        session.add(Token(name=name, secret_hash=secret_hash(secret)))
    else:
        token.secret_hash, token.created_at, token.revoked_at = secret_hash(secret), utcnow(), None
    try:
        session.commit()
    except IntegrityError:  # the same name created at the same moment elsewhere
        session.rollback()
        raise Conflict(f"a token named {name!r} exists") from None
    return secret


def list_tokens(*, session: Session) -> list[TokenInfo]:
    """Every token, active and revoked, by name, with its open browser sessions."""
    logins = (
        select(func.count())
        .where(LoginSession.token_id == Token.id, LoginSession.expires_at > utcnow())
        .scalar_subquery()
    )
    rows = session.execute(select(Token, logins).order_by(Token.name)).all()
    return [TokenInfo(token.name, token.created_at, token.revoked_at, count) for token, count in rows]


def revoke_token(*, session: Session, name: str) -> int:
    """Revoke a token at once and end its browser sessions; returns how many were open."""
    token = session.scalars(select(Token).where(Token.name == name)).one_or_none()
    if token is None:
        raise NotFound(f"no token named {name!r} (tricklab token list shows them)")
    if token.revoked_at is not None:
        raise Conflict(f"token {name!r} was already revoked")
    token.revoked_at = utcnow()
    ended = session.scalar(
        select(func.count()).where(LoginSession.token_id == token.id, LoginSession.expires_at > utcnow())
    )
    session.execute(delete(LoginSession).where(LoginSession.token_id == token.id))
    session.commit()
    return ended or 0


def any_token(*, session: Session) -> bool:
    """Whether a token was ever created here, revoked ones included: from then on the server needs
    one, so revoking a leaked token never opens it to everyone."""
    return bool(session.scalar(select(exists().where(Token.id.is_not(None)))))


def any_active_token(*, session: Session) -> bool:
    return bool(session.scalar(select(exists().where(Token.revoked_at.is_(None)))))


def token_for_secret(*, session: Session, secret: str) -> Token | None:
    """The active token whose secret this is."""
    return session.scalars(
        select(Token).where(Token.secret_hash == secret_hash(secret), Token.revoked_at.is_(None))
    ).one_or_none()


def open_login(*, session: Session, token_secret: str, lifetime: timedelta) -> tuple[str, Token] | None:
    """A browser session for a valid token: the cookie's secret and the token; None for a bad token."""
    token = token_for_secret(session=session, secret=token_secret)
    if token is None:
        return None
    now = utcnow()
    session.execute(delete(LoginSession).where(LoginSession.expires_at <= now))  # housekeeping, in passing
    cookie_secret = secrets.token_urlsafe(32)
    session.add(LoginSession(secret_hash=secret_hash(cookie_secret), token_id=token.id, expires_at=now + lifetime))
    session.commit()
    return cookie_secret, token


def token_for_login(*, session: Session, cookie_secret: str) -> Token | None:
    """The active token of an unexpired browser session."""
    return session.scalars(
        select(Token)
        .join(LoginSession, LoginSession.token_id == Token.id)
        .where(
            LoginSession.secret_hash == secret_hash(cookie_secret),
            LoginSession.expires_at > utcnow(),
            Token.revoked_at.is_(None),
        )
    ).one_or_none()


def close_login(*, session: Session, cookie_secret: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.secret_hash == secret_hash(cookie_secret)))
    session.commit()
