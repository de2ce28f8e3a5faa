"""``models.dialects.insert_rows``: many rows in one statement, as ``insert(table)`` with
many rows would write them, on PostgreSQL (one JSON document) and on SQLite (executemany)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from copying.orders import targets
from models import (
    Order,
    OrderCopy,
    OrderCopyEvent,
    OrderStatus,
    PaymentAuthorization,
)
from models.dialects import insert_rows
from tests.copying.statements import counting_statements
from tests.factories import make_customer, make_order

EVENTS = OrderCopyEvent.__table__
ORDERS = Order.__table__
AUTHORIZATIONS = PaymentAuthorization.__table__


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request, sessions):
    return sessions if request.param == "postgresql" else request.getfixturevalue("sqlite")[0]


def _copy(session) -> OrderCopy:
    source = make_order(session, [], customer=make_customer(session))
    copy = OrderCopy(id=f"c{source.id[1:]}", source_order_id=source.id)
    session.add(copy)
    session.flush()
    return copy


def test_rows_keep_their_values_and_json_documents_their_shape(backend):
    stamp = datetime(2026, 11, 29, 6, 30, 15, 123456, tzinfo=UTC)
    with backend.begin() as s:
        copy = _copy(s)
        data = [
            {"step": "target_built", "errors": {"line_items": ["short of stock"]}},
            {"nested": [1, 2.5, None, True], "text": 'quotes " and \\ and é'},
            {},
        ]
        insert_rows(
            s,
            EVENTS,
            [
                {
                    "order_copy_id": copy.id,
                    "mode": "live",
                    "attempt": n,
                    "kind": f"kind-{n}",
                    "data": d,
                    "created_at": stamp + timedelta(hours=n),
                    "updated_at": stamp,
                }
                for n, d in enumerate(data)
            ],
        )
        rows = s.execute(
            select(EVENTS).where(EVENTS.c.order_copy_id == copy.id).order_by(EVENTS.c.attempt)
        ).all()
    assert [(r.attempt, r.kind, r.mode, r.data) for r in rows] == [
        (n, f"kind-{n}", "live", d) for n, d in enumerate(data)
    ]
    assert [r.created_at for r in rows] == [stamp + timedelta(hours=n) for n in range(3)]
    assert all(r.updated_at == stamp for r in rows)
    assert rows[0].id < rows[1].id < rows[2].id  # the sequence numbered each row, in order


def test_columns_left_out_take_their_defaults(backend):
    """A Python default (a value, or a callable such as a new id or now) and a SQL one (the
    order number's sequence on PostgreSQL) are applied per row, as SQLAlchemy applies them."""
    before = datetime.now(UTC)
    with backend.begin() as s:
        customer = make_customer(s)
        insert_rows(
            s,
            ORDERS,
            [{"currency_code": "EUR", "customer_id": customer.id} for _ in range(3)],
        )
        rows = s.execute(select(ORDERS).where(ORDERS.c.customer_id == customer.id)).all()
    assert len(rows) == 3
    assert len({r.id for r in rows}) == 3  # one new id per row
    assert len({r.number for r in rows}) == 3
    assert all(r.number >= 10_000 for r in rows)
    assert all(r.status == OrderStatus.DRAFT for r in rows)  # a scalar default
    assert all(r.metadata == {} and r.total_amount_cents == 0 for r in rows)
    assert all(r.mode == "test" for r in rows)
    assert all(before <= r.created_at <= datetime.now(UTC) for r in rows)


def _authorization(session) -> dict[str, Any]:
    """An authorization row of a new order, its id left to its default."""
    order = make_order(session, [], customer=make_customer(session))
    return {
        "order_id": order.id,
        "amount_cents": 100,
        "currency_code": "EUR",
        "gateway": "test",
        "idempotency_key": f"key-{order.id}",
        "status": "authorized",
    }


def test_conflicts_on_the_named_columns_are_skipped(backend):
    with backend.begin() as s:
        row = {**_authorization(s), "id": "auth0001"}
        insert_rows(s, AUTHORIZATIONS, [row])
        insert_rows(
            s,
            AUTHORIZATIONS,
            [{**row, "id": "auth0002", "amount_cents": 999}, {**row, "id": "auth0003"}],
            skip_conflicts_on=["idempotency_key"],
        )
        kept = s.execute(
            select(AUTHORIZATIONS.c.id, AUTHORIZATIONS.c.amount_cents).where(
                AUTHORIZATIONS.c.order_id == row["order_id"]
            )
        ).all()
    assert kept == [("auth0001", 100)]


def test_a_conflict_not_named_is_an_error(backend):
    with backend.begin() as s:
        row = _authorization(s)
    with pytest.raises(IntegrityError), backend.begin() as s:
        insert_rows(s, AUTHORIZATIONS, [row, row])


def test_nothing_to_insert_sends_nothing(sessions):
    with sessions.begin() as s:
        s.execute(select(1))  # the transaction's own statements are sent first
        with counting_statements() as statements:
            insert_rows(s, EVENTS, [])
    assert statements == []


def test_rows_of_different_columns_are_refused(backend):
    """Left out of one row, a column would be left out of all of them."""
    with backend.begin() as s:
        row = _authorization(s)
        with pytest.raises(ValueError, match="same keys"):
            insert_rows(s, AUTHORIZATIONS, [row, {**row, "gateway_reference": "ref"}])


def test_a_target_row_is_keyed_by_column_name():
    assert targets.order_row({"id": "o1", "metadata_": {"a": 1}, "currency_code": "EUR"}) == {
        "id": "o1",
        "metadata": {"a": 1},
        "currency_code": "EUR",
    }


def test_a_naive_timestamp_is_refused(sessions):
    with sessions.begin() as s:
        copy = _copy(s)
        with pytest.raises(ValueError, match="naive datetime"):
            insert_rows(
                s,
                EVENTS,
                [
                    {
                        "order_copy_id": copy.id,
                        "attempt": 0,
                        "kind": "created",
                        "data": {},
                        "created_at": datetime(2026, 1, 1),
                    }
                ],
            )


def test_a_column_the_table_lacks_is_refused(sessions):
    with sessions.begin() as s, pytest.raises(ValueError, match="no columns"):
        insert_rows(s, EVENTS, [{"order_copy_id": "x", "kind": "created", "nope": 1}])
