"""Idempotency keys: a create retried with its key returns what the first request created.

A client that gave up waiting cannot know whether its create was stored; sending it again with the
same ``Idempotency-Key`` is safe. The key is stored in the transaction that creates the resource, so
either both are stored or neither is. Two requests with one key at once: on SQLite one waits for the
other's write lock and then finds its key; on PostgreSQL the second one's insert of the key fails on
the unique constraint, its transaction is rolled back, and it returns the first one's resource.
Keys are kept for a day.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.models import IdempotencyKey, utcnow
from backend.services.errors import InvalidParameter

KEEP_FOR = timedelta(days=1)
HEADER_LOC = ("header", "Idempotency-Key")


@dataclass(frozen=True)
class Key:
    scope: str  # what the key creates: "runs", "studies"
    key: str
    request_hash: str

    @classmethod
    def of(cls, scope: str, key: str | None, request: Mapping[str, Any]) -> Key | None:
        """The key of a request (its body as the route read it), or None without a key."""
        if key is None:
            return None
        canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
        return cls(scope, key, hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest())


def _find(session: Session, key: Key) -> int | None:
    row = session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.scope == key.scope, IdempotencyKey.key == key.key)
    ).one_or_none()
    if row is None:
        return None
    if row.request_hash != key.request_hash:
        raise InvalidParameter(HEADER_LOC, "this key came with another request before; use a new key for a new request")
    return row.resource_id


def once(session: Session, key: Key | None, create: Callable[[], int]) -> int:
    """The id ``create()`` makes, committed with the key; or, for a key seen before, the id it made then."""
    if key is not None and (known := _find(session, key)) is not None:
        session.rollback()
        return known
    resource_id = create()
    if key is not None:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - KEEP_FOR))
        session.add(
            IdempotencyKey(scope=key.scope, key=key.key, request_hash=key.request_hash, resource_id=resource_id)
        )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        if key is None or (known := _find(session, key)) is None:
            raise
        session.rollback()
        return known
    return resource_id
