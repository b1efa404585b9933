"""The tokens service on a real SQLite file and a real PostgreSQL: secrets stored only as hashes,
names unique among active tokens, log-ins that end with log-out, expiry and revocation."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from backend.db import Database
from backend.models import LoginSession, Token, utcnow
from backend.services import tokens
from backend.services.errors import Conflict, InvalidParameter, NotFound

DAY = timedelta(days=1)


def name(token: Token | None) -> str | None:
    return None if token is None else token.name


def log_in(session, secret: str) -> str:
    opened = tokens.open_login(session=session, token_secret=secret, lifetime=DAY)
    assert opened is not None
    return opened[0]


@pytest.fixture
def db(database_url, make_database, make_settings) -> Database:
    return make_database(make_settings(database_url))


def test_a_token_is_stored_only_as_its_sha256(db):
    with db.session(write=True) as session:
        secret = tokens.create_token(session=session, name="alice")
    assert secret.startswith(tokens.TOKEN_PREFIX) and len(secret) > 40
    with db.session() as session:
        stored = session.execute(text("SELECT name, secret_hash FROM tokens")).all()
        assert stored == [("alice", hashlib.sha256(secret.encode()).hexdigest())]
        assert name(tokens.token_for_secret(session=session, secret=secret)) == "alice"
        assert tokens.token_for_secret(session=session, secret=secret + "x") is None
        assert tokens.any_active_token(session=session)


def test_names_are_checked_and_unique_among_active_tokens(db):
    with db.session(write=True) as session:
        first = tokens.create_token(session=session, name="ci.bot@lab")
        with pytest.raises(Conflict, match="revoke it first"):
            tokens.create_token(session=session, name="ci.bot@lab")
        for bad in ("", "-x", "a b", "x" * 65, "naïve"):
            with pytest.raises(InvalidParameter, match="letters, digits"):
                tokens.create_token(session=session, name=bad)
        tokens.revoke_token(session=session, name="ci.bot@lab")
        # A revoked name may get a new token (rotation); the old secret stays dead.
        second = tokens.create_token(session=session, name="ci.bot@lab")
        assert tokens.token_for_secret(session=session, secret=first) is None
        assert name(tokens.token_for_secret(session=session, secret=second)) == "ci.bot@lab"
        assert [info.name for info in tokens.list_tokens(session=session)] == ["ci.bot@lab"]


def test_revoking_ends_the_token_and_its_logins(db):
    with db.session(write=True) as session:
        alice = tokens.create_token(session=session, name="alice")
        bob = tokens.create_token(session=session, name="bob")
        cookies = [log_in(session, alice) for _ in range(2)]
        bob_cookie = log_in(session, bob)
        assert name(tokens.token_for_login(session=session, cookie_secret=cookies[0])) == "alice"
        assert [(info.name, info.logins, info.revoked_at) for info in tokens.list_tokens(session=session)] == [
            ("alice", 2, None),
            ("bob", 1, None),
        ]

        assert tokens.revoke_token(session=session, name="alice") == 2
        assert tokens.token_for_secret(session=session, secret=alice) is None
        assert all(tokens.token_for_login(session=session, cookie_secret=cookie) is None for cookie in cookies)
        assert name(tokens.token_for_login(session=session, cookie_secret=bob_cookie)) == "bob"
        listed = {info.name: info for info in tokens.list_tokens(session=session)}
        assert listed["alice"].revoked_at is not None and listed["alice"].logins == 0
        with pytest.raises(Conflict, match="already revoked"):
            tokens.revoke_token(session=session, name="alice")
        with pytest.raises(NotFound, match="no token named 'carol'"):
            tokens.revoke_token(session=session, name="carol")

        tokens.revoke_token(session=session, name="bob")
        assert not tokens.any_active_token(session=session)
        assert tokens.any_token(session=session)  # the server stays closed


def test_a_new_database_has_no_token(db):
    with db.session() as session:
        assert not tokens.any_token(session=session) and not tokens.any_active_token(session=session)
        assert tokens.list_tokens(session=session) == []


def test_a_login_is_its_own_secret_and_ends_with_logout_or_expiry(db):
    with db.session(write=True) as session:
        secret = tokens.create_token(session=session, name="alice")
        assert tokens.open_login(session=session, token_secret="tlab_wrong", lifetime=DAY) is None
        opened = tokens.open_login(session=session, token_secret=secret, lifetime=DAY)
        assert opened is not None
        cookie, token = opened
        assert token.name == "alice" and cookie != secret
        stored = session.scalars(select(LoginSession.secret_hash)).all()
        assert stored == [hashlib.sha256(cookie.encode()).hexdigest()]
        assert tokens.token_for_login(session=session, cookie_secret=secret) is None  # the token is no cookie

        tokens.close_login(session=session, cookie_secret=cookie)
        assert tokens.token_for_login(session=session, cookie_secret=cookie) is None

        old = log_in(session, secret)
        session.execute(update(LoginSession).values(expires_at=utcnow() - DAY))
        session.commit()
        assert tokens.token_for_login(session=session, cookie_secret=old) is None
        # The next log-in clears the expired ones away.
        log_in(session, secret)
        assert len(session.scalars(select(LoginSession)).all()) == 1
        assert session.scalar(select(Token.name)) == "alice"
