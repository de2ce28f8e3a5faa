"""``Idempotency-Key`` on POST: the same key and body return the first response."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from api.errors import ApiError
from models import ApiKey, IdempotencyKey, new_public_id, utcnow
from models.idempotency import KEEP_FOR

KEYS: Table = IdempotencyKey.__table__  # type: ignore[assignment]
#: The header's length is checked where the routes declare it (``api/routes.py``).
MAX_KEY_LENGTH = 255
#: Built once and run with each request's values (issue 20: building a statement per
#: request cost about as much as running it).
_FIND = select(IdempotencyKey).where(
    IdempotencyKey.api_key_id == bindparam("api_key_id"), IdempotencyKey.key == bindparam("key")
)
_REMEMBER = insert(KEYS)


def request_hash(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def replay(session: Session, api_key: ApiKey, key: str, digest: str) -> IdempotencyKey | None:
    """The remembered response for ``key``, or None; one remembered longer than
    :data:`KEEP_FOR` ago is deleted here, making room for :func:`remember` in the same
    transaction. A different request → 422."""
    stored = session.scalar(_FIND, {"api_key_id": api_key.id, "key": key})
    if stored is not None and stored.created_at <= utcnow() - KEEP_FOR:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == stored.id))
        return None
    if stored is not None and stored.request_hash != digest:
        raise ApiError(
            422,
            "this Idempotency-Key was used with a different request",
            parameter="Idempotency-Key",
            code="IDEMPOTENCY_KEY_REUSED",
        )
    return stored


def remember(
    session: Session, api_key: ApiKey, key: str, digest: str, status: int, body: dict[str, Any]
) -> None:
    """Store the response in the request's transaction, which :func:`replay` began (a
    concurrent twin fails to commit)."""
    session.execute(
        _REMEMBER,
        {
            "id": new_public_id(),
            "api_key_id": api_key.id,
            "mode": api_key.mode,
            "key": key,
            "request_hash": digest,
            "response_status": status,
            "response_body": body,
        },
    )
