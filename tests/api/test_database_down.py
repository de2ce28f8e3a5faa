"""While the database cannot be reached the API answers 503 with Retry-After, never a
500; a create refused that way and sent again with its Idempotency-Key is made once."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models import OrderCopy, db
from models.db import make_engine
from tests.api.errors import assert_error
from tests.api.shop import build_shop
from tests.services import free_port


class Outage:
    """Takes the process's database away (its engine points at a port nothing
    listens on) and gives it back."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.nowhere = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x")

    def down(self) -> None:
        self.monkeypatch.setattr(db, "_engine", self.nowhere)
        self.monkeypatch.setattr(db, "_sessions", None)

    def up(self) -> None:
        self.monkeypatch.undo()


@pytest.fixture
def postgres(monkeypatch):
    postgres = Outage(monkeypatch)
    yield postgres
    postgres.up()
    postgres.nowhere.dispose()


def copies() -> int:
    with db.sessions().begin() as session:
        return session.scalar(select(func.count()).select_from(OrderCopy)) or 0


def test_a_read_is_a_503_with_retry_after(api, postgres):
    postgres.down()

    response = api.get("/api/order_copies")

    assert_error(response, 503, code="SERVICE_UNAVAILABLE", detail="the database did not answer")
    assert response.headers["retry-after"] == "1"


def test_a_create_refused_while_the_database_is_down_is_made_once_when_sent_again(api, postgres):
    order_id = build_shop(api).order["id"]
    document = {
        "data": {
            "type": "order_copies",
            "relationships": {"source_order": {"data": {"type": "orders", "id": order_id}}},
        }
    }
    key = {"Idempotency-Key": "renewal-7"}
    postgres.down()

    refused = api.post("/api/order_copies", document, key)

    assert_error(refused, 503, detail="Idempotency-Key")
    postgres.up()
    made = api.post("/api/order_copies", document, key)
    again = api.post("/api/order_copies", document, key)
    assert made.status_code == again.status_code == 201, made.json()
    assert made.json()["data"]["id"] == again.json()["data"]["id"]
    assert copies() == 1
