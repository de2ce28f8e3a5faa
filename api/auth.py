"""API keys: ``Authorization: Bearer <key>``; the key's mode scopes every read and write."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.errors import ApiError
from models import ApiKey, Mode, db, new_public_id, utcnow

bearer = HTTPBearer(auto_error=False, description="An API key from `ordercopy api-keys create`")
TOUCH_EVERY = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_key(session: Session, *, name: str, mode: Mode) -> tuple[ApiKey, str]:
    """A new key: the row (holding only the hash) and the token, shown once. Does not commit."""
    token = f"oc_{mode.value}_{secrets.token_urlsafe(32)}"
    key = ApiKey(id=new_public_id(), name=name, mode=mode, token_hash=hash_token(token))
    session.add(key)
    session.flush()
    return key, token


def authenticate(
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
) -> ApiKey:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "send an API key: Authorization: Bearer <key>")
    now = utcnow()
    with db.sessions().begin() as session:
        key = session.scalar(
            select(ApiKey).where(ApiKey.token_hash == hash_token(credentials.credentials))
        )
        if key is None or key.revoked_at is not None:
            raise ApiError(401, "the API key is unknown or revoked")
        if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
            session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        return key
