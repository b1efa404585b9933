"""Who may write, and writes already done: API tokens, browser log-ins, Idempotency-Keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base, utcnow


class Token(Base):
    """An API token: the name runs and studies record as their creator, and the SHA-256 of its secret.

    A revoked token keeps its row (``token list`` shows it) until its name is given a new token.
    """

    __tablename__ = "tokens"
    __table_args__ = (UniqueConstraint("name"), UniqueConstraint("secret_hash"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class LoginSession(Base):
    """A browser's log-in: its cookie holds a random secret, stored here as a SHA-256, tied to a token."""

    __tablename__ = "login_sessions"
    __table_args__ = (UniqueConstraint("secret_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class IdempotencyKey(Base):
    """A create request's Idempotency-Key and what it created: a retry with the key gets that back."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(32))  # what the key creates: "runs" or "studies"
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))  # the request it came with: another one is refused
    resource_id: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
