"""API keys: ``Authorization: Bearer <key>``; the key's mode scopes every read and write."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.errors import ApiError
from models import ApiKey, Mode, db, new_public_id, utcnow

bearer = HTTPBearer(auto_error=False, description="An API key from `ordercopy api-keys create`")
TOUCH_EVERY = timedelta(minutes=1)
#: Where the middleware leaves the request's key (``request.state``).
API_KEY = "api_key"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_key(session: Session, *, name: str, mode: Mode) -> tuple[ApiKey, str]:
    """A new key: the row (holding only the hash) and the token, shown once. Does not commit."""
    token = f"oc_{mode.value}_{secrets.token_urlsafe(32)}"
    key = ApiKey(id=new_public_id(), name=name, mode=mode, token_hash=hash_token(token))
    session.add(key)
    session.flush()
    return key, token


def check_api_key(authorization: str | None) -> ApiKey:
    """The key an ``Authorization`` header names, or ApiError(401). The one check of a key:
    :class:`api.middleware.Authentication` runs it before a request's body is read."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "send an API key: Authorization: Bearer <key>")
    now = utcnow()
    with db.sessions().begin() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.token_hash == hash_token(token)))
        if key is None or key.revoked_at is not None:
            raise ApiError(401, "the API key is unknown or revoked")
        if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
            session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        return key


def authenticate(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
) -> ApiKey:
    """The request's key, as the middleware found it (``credentials`` only puts the
    scheme in the OpenAPI document); checked here if no middleware did."""
    key = getattr(request.state, API_KEY, None)
    if isinstance(key, ApiKey):
        return key
    return check_api_key(request.headers.get("authorization"))
