"""The X-CommerceLayer-Signature: base64(HMAC-SHA256(shared secret, raw body))."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from copying.webhooks.signing import new_secret, signature, verify

# RFC 4231, test case 2: HMAC-SHA256 with key "Jefe".
RFC_4231_KEY = "Jefe"
RFC_4231_DATA = b"what do ya want for nothing?"
RFC_4231_HEX = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_signature_is_base64_of_the_hmac_sha256_of_the_raw_body():
    expected = base64.b64encode(bytes.fromhex(RFC_4231_HEX)).decode()
    assert signature(RFC_4231_KEY, RFC_4231_DATA) == expected


def test_signature_is_standard_padded_base64_of_32_bytes():
    value = signature("s3cret", b'{"data":{}}')
    assert len(value) == 44
    assert value.endswith("=")
    assert len(base64.b64decode(value, validate=True)) == 32


def test_the_secret_is_keyed_as_its_utf8_bytes():
    expected = base64.b64encode(hmac.new("clé".encode(), b"body", hashlib.sha256).digest())
    assert signature("clé", b"body") == expected.decode()


def test_verify_accepts_the_signature_of_the_body():
    body = b'{"data":{"id":"XAyRWNUzyN","type":"order_copies"}}'
    assert verify("s3cret", body, signature("s3cret", body))


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(signature("other", b"body"), id="other secret"),
        pytest.param(signature("s3cret", b"body "), id="other body"),
        pytest.param(signature("s3cret", b"body").rstrip("="), id="padding dropped"),
        pytest.param(signature("s3cret", b"body") + " ", id="trailing space"),
        pytest.param(hmac.new(b"s3cret", b"body", hashlib.sha256).hexdigest(), id="hex digest"),
        pytest.param("", id="empty"),
        pytest.param("é" * 44, id="not ascii"),
    ],
)
def test_verify_rejects_anything_else(given: str):
    assert not verify("s3cret", b"body", given)


def test_new_secret_is_64_hex_characters_and_fresh():
    secrets = {new_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert len(secret) == 64
        assert set(secret) <= set("0123456789abcdef")
