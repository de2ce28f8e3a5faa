"""An HTTP client for the API, with a test-mode and a live-mode key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient

from api.auth import issue_key
from api.errors import MEDIA_TYPE
from models import Mode
from tests.api.shop import Shop, build_shop
from tests.worker.processes import flush_broker

JSONAPI = {"Accept": MEDIA_TYPE, "Content-Type": MEDIA_TYPE}


@dataclass
class Api:
    client: TestClient
    token: str

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**JSONAPI, "Authorization": f"Bearer {self.token}", **(extra or {})}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.headers())

    def post(self, path: str, document: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(path, json=document, headers=self.headers(headers))

    def patch(self, path: str, document: Any, **params: Any) -> Any:
        return self.client.patch(path, json=document, params=params, headers=self.headers())

    def delete(self, path: str) -> Any:
        return self.client.delete(path, headers=self.headers())

    def create(
        self,
        type_: str,
        attributes: dict[str, Any],
        relationships: dict[str, tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"type": type_, "attributes": attributes}
        if relationships:
            data["relationships"] = {
                name: {"data": {"type": t, "id": i}} for name, (t, i) in relationships.items()
            }
        response = self.post(f"/api/{type_}", {"data": data})
        assert response.status_code == 201, response.json()
        return response.json()["data"]  # type: ignore[no-any-return]

    def update(
        self,
        type_: str,
        id_: str,
        attributes: dict[str, Any] | None = None,
        relationships: dict[str, tuple[str, str] | None] | None = None,
    ) -> Any:
        """PATCH the resource; the response, whatever its status."""
        data: dict[str, Any] = {"type": type_, "id": id_}
        if attributes is not None:
            data["attributes"] = attributes
        if relationships is not None:
            data["relationships"] = {
                name: {"data": {"type": value[0], "id": value[1]} if value else None}
                for name, value in relationships.items()
            }
        return self.patch(f"/api/{type_}/{id_}", {"data": data})

    def retrieve(self, type_: str, id_: str, **params: Any) -> dict[str, Any]:
        response = self.get(f"/api/{type_}/{id_}", **params)
        assert response.status_code == 200, response.json()
        return response.json()["data"]  # type: ignore[no-any-return]

    def ids(self, path: str, **params: Any) -> list[str]:
        """The ids a list returns, in order."""
        response = self.get(path, **params)
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["data"]]


@pytest.fixture(scope="session", autouse=True)
def _no_doorbells_left() -> Iterator[None]:
    """The API publishes every copy it creates; no worker reads these tests' queue."""
    yield
    flush_broker()


@pytest.fixture
def http(committed) -> Iterator[TestClient]:
    from api.app import app

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _api(http: TestClient, committed: Any, mode: Mode) -> Api:
    with committed.begin() as session:
        _, token = issue_key(session, name=f"{mode} key", mode=mode)
    return Api(http, token)


@pytest.fixture
def api(http, committed) -> Api:
    return _api(http, committed, Mode.TEST)


@pytest.fixture
def live_api(http, committed) -> Api:
    return _api(http, committed, Mode.LIVE)


@pytest.fixture
def shop(api) -> Shop:
    """A placed source order built over the API (tests/api/shop.py)."""
    return build_shop(api)


@pytest.fixture
def celery_worker(committed) -> Iterator[object]:
    """A real worker (solo pool, in a thread) on the tests' Redis; the queue emptied first
    and afterwards."""
    import worker

    flush_broker()
    with start_worker(
        worker.app, pool="solo", perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"
    ) as running:
        yield running
    flush_broker()
