"""A web process trusts a key it found for ``api_key_cache_seconds`` (api/auth.py's
``RecentKeys``): revoking a key takes effect within that time, at once with 0."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from unittest import mock

import pytest
from sqlalchemy import update

from api.auth import hash_token, recent_keys
from config import get_settings
from models import ApiKey, db, utcnow
from tests.api.errors import assert_error


@pytest.fixture
def cache_seconds() -> Iterator[object]:
    """Sets ``api_key_cache_seconds`` for the test (settings are read per request)."""
    with mock.patch.dict(os.environ) as environ:

        def use(seconds: float) -> None:
            environ["ORDERCOPY_API_KEY_CACHE_SECONDS"] = str(seconds)
            get_settings.cache_clear()

        yield use
    get_settings.cache_clear()


def revoke(token: str) -> None:
    with db.sessions().begin() as session:
        session.execute(
            update(ApiKey).where(ApiKey.token_hash == hash_token(token)).values(revoked_at=utcnow())
        )


def test_a_key_found_is_trusted_for_the_cache_lifetime_without_reading_it(api, cache_seconds):
    cache_seconds(60)
    assert api.get("/api/order_copies").status_code == 200

    revoke(api.token)

    assert api.get("/api/order_copies").status_code == 200  # still within its minute
    recent_keys.clear()  # as a new web process starts
    assert_error(api.get("/api/order_copies"), 401, detail="revoked")


def test_a_revoked_key_is_refused_once_the_cache_lifetime_passed(api, cache_seconds):
    cache_seconds(0.2)
    assert api.get("/api/order_copies").status_code == 200

    revoke(api.token)
    time.sleep(0.3)

    assert_error(api.get("/api/order_copies"), 401, detail="revoked")


def test_with_no_cache_a_revoked_key_is_refused_at_once(api, cache_seconds):
    cache_seconds(0)
    assert api.get("/api/order_copies").status_code == 200

    revoke(api.token)

    assert_error(api.get("/api/order_copies"), 401, detail="revoked")


def test_an_unknown_key_is_not_remembered(api, cache_seconds):
    cache_seconds(60)
    assert_error(api.client.get("/api/order_copies", headers={"Authorization": "Bearer nope"}), 401)

    assert recent_keys.get(hash_token("nope")) is None
