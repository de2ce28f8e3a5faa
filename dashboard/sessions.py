"""Who is looking: an API key, from a signed session cookie or ``Authorization: Bearer``.

The cookie holds ``<key id>.<expires>.<nonce>.<signature>``; the signature is an HMAC
keyed by a secret derived from the key's stored hash, which only the database holds.
So any web process can check a cookie without a shared secret to configure, and
revoking the key ends its sessions. The CSRF token of a session is an HMAC of its nonce
under the same secret: it is valid exactly as long as the session is. A request that
sends its key as ``Authorization: Bearer`` carries no ambient credential and needs none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from api.auth import check_api_key
from models import ApiKey, Mode, db, utcnow

COOKIE = "ordercopy_dashboard"
#: The sign-in form's CSRF token, before there is a session (double submit).
SIGN_IN_COOKIE = "ordercopy_dashboard_sign_in"
PATH = "/dashboard"
LIFETIME = timedelta(hours=8)


class SignInRequired(Exception):
    """No valid session: go to the sign-in page, then back to ``next``."""

    def __init__(self, next_url: str, *, expired: bool = False) -> None:
        super().__init__(next_url)
        self.next_url = next_url
        self.expired = expired


class CsrfRefused(Exception):
    """A form posted without this session's CSRF token."""


@dataclass(frozen=True)
class Viewer:
    key_id: str
    key_name: str
    mode: Mode
    #: The token every form must send back (empty for a Bearer request: none is needed).
    csrf: str
    by_bearer: bool = False

    @property
    def by(self) -> str:
        """Who changes things, in the copies' history."""
        return f"dashboard:{self.key_name}"


def _secret(key: ApiKey) -> bytes:
    return hashlib.sha256(b"ordercopy-dashboard-session\x00" + key.token_hash.encode()).digest()


def _mac(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def session_cookie(key: ApiKey, *, now: datetime | None = None) -> str:
    """A new session's cookie value for ``key``, expiring :data:`LIFETIME` from ``now``."""
    expires = int(((now or utcnow()) + LIFETIME).timestamp())
    payload = f"{key.id}.{expires}.{secrets.token_urlsafe(16)}"
    return f"{payload}.{_mac(_secret(key), payload)}"


def sign_in(token: str) -> ApiKey:
    """The key ``token`` is, or ApiError(401)."""
    return check_api_key(f"Bearer {token.strip()}")


def _from_cookie(value: str, next_url: str, now: datetime) -> Viewer:
    parts = value.split(".")
    if len(parts) != 4 or not parts[1].isdigit():
        raise SignInRequired(next_url)
    key_id, expires, nonce, signature = parts
    with db.sessions().begin() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.id == key_id))
        if key is None or key.revoked_at is not None:
            raise SignInRequired(next_url)
        secret = _secret(key)
        if not hmac.compare_digest(signature, _mac(secret, f"{key_id}.{expires}.{nonce}")):
            raise SignInRequired(next_url)
        if int(expires) <= now.timestamp():
            raise SignInRequired(next_url, expired=True)
        return Viewer(key.id, key.name, key.mode, csrf=_mac(secret, f"csrf.{nonce}"))


def viewer(authorization: str | None, cookie: str | None, next_url: str) -> Viewer:
    """The key behind this request, or SignInRequired. A Bearer key that does not check
    out is refused as the API refuses it (ApiError 401), not sent to a form."""
    if authorization:
        key = check_api_key(authorization)
        return Viewer(key.id, key.name, key.mode, csrf="", by_bearer=True)
    if not cookie:
        raise SignInRequired(next_url)
    return _from_cookie(cookie, next_url, utcnow())


def check_csrf(viewer: Viewer, sent: str | None) -> None:
    """Raise CsrfRefused unless ``sent`` is the session's token (Bearer requests need none)."""
    if viewer.by_bearer:
        return
    if not sent or not hmac.compare_digest(sent, viewer.csrf):
        raise CsrfRefused()


def safe_next(next_url: str | None) -> str:
    """Where to go after signing in: a dashboard path of this site, never elsewhere."""
    if (
        next_url
        and next_url.startswith(PATH)
        and not any(c in next_url for c in "\\\r\n")
        and next_url[len(PATH) : len(PATH) + 1] in ("", "/", "?")
    ):
        return next_url
    return PATH
