"""While the database cannot be reached the API answers 503 with Retry-After, never a
500; a create refused that way and sent again with its Idempotency-Key is made once. A
statement the database refuses for good stays a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from api.app import _not_now
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

    assert_error(refused, 503, detail="with the same Idempotency-Key")
    postgres.up()
    made = api.post("/api/order_copies", document, key)
    again = api.post("/api/order_copies", document, key)
    assert made.status_code == again.status_code == 201, made.json()
    assert made.json()["data"]["id"] == again.json()["data"]["id"]
    assert copies() == 1


def database_error(statement: str, url: str | None = None) -> DBAPIError:
    """The error SQLAlchemy raises for ``statement`` on a real connection."""
    engine = make_engine(url or db.engine().url.render_as_string(hide_password=False))
    try:
        with pytest.raises(DBAPIError) as raised, engine.connect() as connection:
            connection.exec_driver_sql(statement)
        return raised.value
    finally:
        engine.dispose()


def test_an_unreachable_or_restarting_database_is_not_now():
    nowhere = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"

    assert _not_now(database_error("SELECT 1", nowhere))  # connection refused
    assert _not_now(database_error("SELECT pg_terminate_backend(pg_backend_pid())"))


def test_a_query_the_database_refuses_is_not_a_503():
    """A statement timeout would time out again: a 500, logged, not "send it again"."""
    timed_out = database_error("SET statement_timeout = 10; SELECT pg_sleep(1)")

    assert timed_out.orig.sqlstate == "57014"
    assert not _not_now(timed_out)
