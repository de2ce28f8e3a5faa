"""The ``X-CommerceLayer-Signature`` of a webhook payload.

Commerce Layer signs the raw request body with HMAC-SHA256, keyed on the webhook's
``shared_secret`` (its UTF-8 bytes), and sends the digest base64-encoded (standard
alphabet, padded). A receiver written for Commerce Layer recomputes exactly this over
the bytes it received, so the body must be signed as sent: never re-serialized.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-CommerceLayer-Signature"


def signature(shared_secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(shared_secret, body)): the value of ``X-CommerceLayer-Signature``."""
    return base64.b64encode(_digest(shared_secret, body)).decode("ascii")


def verify(shared_secret: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is the signature of ``body``, compared in constant time.

    Anything that is not the exact base64 text (other padding, whitespace, hex) is a
    mismatch, as it is for Commerce Layer's receivers, which compare strings.
    """
    expected = base64.b64encode(_digest(shared_secret, body))
    try:
        given = signature.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, given)


def _digest(shared_secret: str, body: bytes) -> bytes:
    return hmac.new(shared_secret.encode("utf-8"), body, hashlib.sha256).digest()


def new_secret() -> str:
    """A fresh shared secret: 32 random bytes as 64 hex characters."""
    return secrets.token_hex(32)
