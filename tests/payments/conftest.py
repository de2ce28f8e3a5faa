"""Payments against the example merchant endpoint, over HTTP (tests/payments/endpoint.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config import get_settings
from tests.api.conftest import (  # noqa: F401  (the API's fixtures, for the flows over HTTP)
    _no_doorbells_left,
    api,
    celery_worker,
    http,
    live_api,
)
from tests.payments.endpoint import Endpoint, running_endpoint


@pytest.fixture
def private_allowed(settings_env) -> None:
    """Loopback URLs allowed (in test mode), as webhooks' tests allow them."""
    settings_env["ORDERCOPY_WEBHOOKS_ALLOW_PRIVATE"] = "true"
    get_settings.cache_clear()


@pytest.fixture
def endpoint(tmp_path, private_allowed) -> Iterator[Endpoint]:
    """The example endpoint on loopback."""
    with running_endpoint(tmp_path) as running:
        yield running
