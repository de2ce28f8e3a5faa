"""API keys: ``Authorization: Bearer <key>``; the key's mode scopes every read and write."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from datetime import timedelta

from fastapi import Request
from fastapi.security import HTTPBearer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.errors import ApiError
from config import get_settings
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


class RecentKeys:
    """The keys this process found lately, by their token's hash, each trusted for
    ``api_key_cache_seconds``: a request whose key was read that recently is answered
    without a trip to the database and to the threadpool (issue 20). Only keys found and
    live are kept, each under its own token's hash, so no request is ever given another
    key's mode; a revoked key is refused at most that long after it was revoked."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._keys: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> ApiKey | None:
        with self._lock:
            found = self._keys.get(digest)
            if found is None:
                return None
            if time.monotonic() >= found[0]:
                del self._keys[digest]
                return None
            return found[1]

    def put(self, digest: str, key: ApiKey, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._keys[digest] = (time.monotonic() + ttl, key)
            self._keys.move_to_end(digest)
            while len(self._keys) > self.size:
                self._keys.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


recent_keys = RecentKeys()


def token_digest(authorization: str | None) -> str:
    """The hash of the token an ``Authorization`` header carries, or ApiError(401)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "send an API key: Authorization: Bearer <key>")
    return hash_token(token)


def check_api_key(authorization: str | None) -> ApiKey:
    """The key an ``Authorization`` header names, or ApiError(401): from
    :data:`recent_keys` when this process read it lately, else from the database."""
    digest = token_digest(authorization)
    return recent_keys.get(digest) or read_key(digest)


def read_key(digest: str) -> ApiKey:
    """The live key whose token hashes to ``digest``, from the database (and then kept in
    :data:`recent_keys`), or ApiError(401). :class:`api.middleware.Authentication` runs it
    in the threadpool, before a request's body is read, when ``recent_keys`` has no key."""
    now = utcnow()
    with db.sessions().begin() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.token_hash == digest))
        if key is None or key.revoked_at is not None:
            raise ApiError(401, "the API key is unknown or revoked")
        if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
            session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
    recent_keys.put(digest, key, get_settings().api_key_cache_seconds)
    return key


def request_key(request: Request) -> ApiKey:
    """The request's key, as the middleware found it; checked here if no middleware did.
    A route calls it, in the threadpool: a dependency cost FastAPI's dependency machinery
    on every request (issue 20). ``bearer`` is the scheme the OpenAPI document states
    (``api/openapi.py``)."""
    key = getattr(request.state, API_KEY, None)
    if isinstance(key, ApiKey):
        return key
    return check_api_key(request.headers.get("authorization"))
