"""Captures and refunds left ``requested`` (their request died, or the gateway did not
answer): asked again under the same key by the next request or by the sweeper."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from copying.orders import placing
from copying.orders.gateways import FLAKY_FAILURES, GatewayUnavailableError
from models import (
    Mode,
    Order,
    PaymentStatus,
    PaymentTransaction,
    TestGatewayTransaction,
    TransactionKind,
    TransactionStatus,
    utcnow,
)
from tests.factories import make_shop
from tests.money import settle_and_check

STOCK = 10
WINDOW = timedelta(minutes=5)


@pytest.fixture
def flaky_order(committed, gateways):
    """A placed order paid with ``tok_flaky``: each of its keys times out twice at the
    test gateway, then is answered."""
    with committed.begin() as s:
        shop = make_shop(s, quantity=2, stock=STOCK, price=1000, token="tok_flaky")
    for _ in range(FLAKY_FAILURES):
        with pytest.raises(GatewayUnavailableError):
            placing.place_order(committed, shop.source.id, Mode.TEST, gateways=gateways)
    assert placing.place_order(committed, shop.source.id, Mode.TEST, gateways=gateways) == []
    return shop


def _transactions(committed, kind):
    with committed.begin() as s:
        return s.scalars(select(PaymentTransaction).where(PaymentTransaction.kind == kind)).all()


def test_the_sweeper_asks_an_unanswered_capture_again_under_its_key(
    committed, gateways, flaky_order
):
    order_id = flaky_order.source.id
    for _ in range(FLAKY_FAILURES):
        with pytest.raises(GatewayUnavailableError):
            placing.capture_order(committed, order_id, Mode.TEST, gateways=gateways)
    [left] = _transactions(committed, TransactionKind.CAPTURE)
    now = utcnow()

    too_soon = placing.settle_abandoned(committed, gateways, now, older_than=WINDOW, limit=10)
    later = placing.settle_abandoned(
        committed, gateways, now + WINDOW * 2, older_than=WINDOW, limit=10
    )

    [capture] = _transactions(committed, TransactionKind.CAPTURE)
    with committed.begin() as s:
        at_gateway = s.get_one(TestGatewayTransaction, capture.idempotency_key)
        paid = s.get_one(Order, order_id).payment_status
    assert (too_soon, later) == (0, 1)
    assert (left.status, capture.status) == (
        TransactionStatus.REQUESTED,
        TransactionStatus.SUCCEEDED,
    )
    assert capture.idempotency_key == left.idempotency_key == f"order:{order_id}:capture:1"
    assert (at_gateway.failures, at_gateway.outcome) == (FLAKY_FAILURES, "succeeded")
    assert paid == PaymentStatus.PAID
    assert settle_and_check(committed, {flaky_order.sku.code: STOCK}) == []


def test_a_cancel_whose_refund_got_no_answer_is_refunded_by_the_sweeper(
    committed, gateways, flaky_order
):
    order_id = flaky_order.source.id
    for _ in range(FLAKY_FAILURES):
        with pytest.raises(GatewayUnavailableError):
            placing.capture_order(committed, order_id, Mode.TEST, gateways=gateways)
    placing.capture_order(committed, order_id, Mode.TEST, gateways=gateways)
    with pytest.raises(GatewayUnavailableError):  # cancelled; its refund not answered
        placing.cancel_order(committed, order_id, Mode.TEST, gateways=gateways)
    asked_again = [
        placing.settle_abandoned(
            committed, gateways, utcnow() + WINDOW * n, older_than=WINDOW, limit=10
        )
        for n in (2, 4)
    ]

    [refund] = _transactions(committed, TransactionKind.REFUND)
    with committed.begin() as s:
        order = s.get_one(Order, order_id)
    assert asked_again == [1, 1]  # the second flaky timeout, then the answer
    assert (refund.status, refund.amount_cents) == (TransactionStatus.SUCCEEDED, 2000)
    assert (order.status, order.payment_status) == ("cancelled", PaymentStatus.REFUNDED)
    assert settle_and_check(committed, {flaky_order.sku.code: STOCK}) == []
