"""Cancelling the source: its stock released, its authorization voided or its capture
refunded, only when allowed."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from copying.orders import placing
from copying.orders.gateways import FLAKY_FAILURES, GatewayUnavailableError
from copying.runs import Outcome
from models import (
    AuthorizationStatus,
    CopyStatus,
    CopyStep,
    CustomerPaymentSource,
    FulfillmentStatus,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    PaymentStatus,
    PaymentTransaction,
    Sku,
    TestGatewayTransaction,
    TransactionKind,
    TransactionStatus,
)
from tests import invariants
from tests.factories import (
    Line,
    authorizations,
    create_copy,
    gateway_charge,
    make_order,
    make_shop,
    make_sku,
)
from tests.runs import execute_one


@pytest.fixture
def placed_shop(sessions, gateways):
    """A source order of 2 units (10 in stock), placed and authorized under a key of its
    placing request, ``order:<id>:place:<nonce>``."""
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10, price=1000)
    assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    return shop


@pytest.mark.parametrize("place", [True, False])
def test_cancel_voids_the_source_payment_and_releases_its_stock(
    sessions, gateways, clock, placed_shop, place
):
    with sessions.begin() as s:
        [held] = authorizations(s, placed_shop.source.id)
        source_key = held.idempotency_key
        assert source_key.startswith(f"order:{placed_shop.source.id}:place:")
        assert s.get_one(Sku, placed_shop.sku.id).stock_quantity == 8
        assert gateway_charge(s, source_key).voided_at is None

    copy = create_copy(
        sessions, placed_shop.source.id, place_target_order=place, cancel_source_order=True
    )
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        source = s.get_one(Order, placed_shop.source.id)
        target = s.get_one(Order, row.target_order_id)
        [source_payment] = authorizations(s, source.id)
        charge = gateway_charge(s, source_key)
        stock = s.get_one(Sku, placed_shop.sku.id).stock_quantity
    assert (row.status, row.step, row.errors_log) == (
        CopyStatus.COMPLETED,
        CopyStep.SOURCE_CANCELLED,
        {},
    )
    assert row.completed_at == clock.now
    assert (source.status, source.payment_status) == (OrderStatus.CANCELLED, PaymentStatus.VOIDED)
    assert source.cancelled_at == clock.now
    assert source_payment.idempotency_key == source_key
    assert (source_payment.status, source_payment.voided_at) == (
        AuthorizationStatus.VOIDED,
        clock.now,
    )
    # The gateway's own ledger says the hold is released.
    assert charge.voided_at is not None
    assert target.status == (OrderStatus.PLACED if place else OrderStatus.PENDING)
    assert stock == (6 if place else 8) + 2


def test_cancel_of_an_approved_unfulfilled_source(sessions, gateways, clock, placed_shop):
    with sessions.begin() as s:
        s.get_one(Order, placed_shop.source.id).status = OrderStatus.APPROVED

    copy = create_copy(sessions, placed_shop.source.id, cancel_source_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        assert s.get_one(Order, placed_shop.source.id).status == OrderStatus.CANCELLED


def test_cancel_of_a_free_source_has_nothing_to_void(sessions, gateways, clock):
    with sessions.begin() as s:
        sample = make_sku(s, "SAMPLE", price=0, stock=5)
        source = make_order(s, [Line(sample, 1)])
    assert placing.place_order(sessions, source.id, Mode.TEST, gateways=gateways) == []

    copy = create_copy(sessions, source.id, cancel_source_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        source = s.get_one(Order, source.id)
        stock = s.get_one(Sku, sample.id).stock_quantity
    assert (row.step, row.errors_log) == (CopyStep.SOURCE_CANCELLED, {})
    assert (source.status, source.payment_status) == (OrderStatus.CANCELLED, PaymentStatus.FREE)
    assert stock == 5


def _refused(sessions, gateways, clock, source_id, message, **options):
    copy = create_copy(sessions, source_id, cancel_source_order=True, **options)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED
    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
    assert row.status == CopyStatus.FAILED
    assert row.errors_log == {"source_order": [message]}
    assert row.errors_count == 1
    assert (row.failed_at, row.completed_at) == (clock.now, None)
    return row


def test_a_pending_source_cannot_be_cancelled(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s)
    source_id = shop.source.id

    row = _refused(
        sessions,
        gateways,
        clock,
        source_id,
        f"order {source_id} is pending, only placed or approved orders can be cancelled",
    )

    with sessions.begin() as s:
        source = s.get_one(Order, source_id)
        target = s.get_one(Order, row.target_order_id)
    assert (source.status, source.cancelled_at) == (OrderStatus.PENDING, None)
    assert target.status == OrderStatus.PENDING
    assert row.step == CopyStep.TARGET_BUILT


def test_a_cancelled_source_cannot_be_cancelled_again(sessions, gateways, clock, placed_shop):
    source_id = placed_shop.source.id
    assert placing.cancel_order(sessions, source_id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:
        cancelled_at = s.get_one(Order, source_id).cancelled_at

    _refused(
        sessions,
        gateways,
        clock,
        source_id,
        f"order {source_id} is cancelled, only placed or approved orders can be cancelled",
    )

    with sessions.begin() as s:
        assert s.get_one(Order, source_id).cancelled_at == cancelled_at
        # Released once, by the first cancellation only.
        assert s.get_one(Sku, placed_shop.sku.id).stock_quantity == 10


@pytest.mark.parametrize(
    ("fulfillment", "words"),
    [(FulfillmentStatus.IN_PROGRESS, "in progress"), (FulfillmentStatus.FULFILLED, "fulfilled")],
)
def test_a_shipped_source_cannot_be_cancelled(
    sessions, gateways, clock, placed_shop, fulfillment, words
):
    source_id = placed_shop.source.id
    with sessions.begin() as s:
        s.get_one(Order, source_id).fulfillment_status = fulfillment

    _refused(
        sessions,
        gateways,
        clock,
        source_id,
        f"order {source_id} is {words}, only unfulfilled orders can be cancelled",
    )

    with sessions.begin() as s:
        source = s.get_one(Order, source_id)
        [payment] = authorizations(s, source_id)
    assert (source.status, payment.status) == (OrderStatus.PLACED, AuthorizationStatus.AUTHORIZED)


def test_cancel_is_refused_when_the_target_was_asked_placed_and_was_not(
    sessions, gateways, clock, placed_shop
):
    source_id = placed_shop.source.id
    with sessions.begin() as s:
        s.get_one(CustomerPaymentSource, placed_shop.entry.id).payment_source_token = "tok_declined"

    copy = create_copy(
        sessions, source_id, place_target_order=True, cancel_source_order=True, skip_errors=True
    )
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        source = s.get_one(Order, source_id)
        target = s.get_one(Order, row.target_order_id)
        [source_payment] = authorizations(s, source_id)
        stock = s.get_one(Sku, placed_shop.sku.id).stock_quantity
    # skip_errors: completed because the target exists, with both errors on record.
    assert row.errors_log == {
        "payment": ["payment declined: card declined"],
        "source_order": ["not cancelled: the target order was not placed"],
    }
    assert row.errors_count == 2
    assert (row.status, row.completed_at, row.failed_at) == (
        CopyStatus.COMPLETED,
        clock.now,
        None,
    )
    assert target.status == OrderStatus.PENDING
    assert (source.status, source_payment.status) == (
        OrderStatus.PLACED,
        AuthorizationStatus.AUTHORIZED,
    )
    assert stock == 8


def test_a_failed_place_stops_before_cancelling(sessions, gateways, clock, placed_shop):
    source_id = placed_shop.source.id
    with sessions.begin() as s:
        s.get_one(CustomerPaymentSource, placed_shop.entry.id).payment_source_token = "tok_declined"

    copy = create_copy(sessions, source_id, place_target_order=True, cancel_source_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        source = s.get_one(Order, source_id)
    assert row.errors_log == {"payment": ["payment declined: card declined"]}
    assert source.status == OrderStatus.PLACED


@pytest.mark.parametrize("refunded_before", [0, 300])
def test_a_captured_source_is_refunded_what_is_left_when_its_copy_cancels_it(
    sessions, gateways, clock, placed_shop, refunded_before
):
    source_id = placed_shop.source.id
    placing.capture_order(sessions, source_id, Mode.TEST, gateways=gateways)
    if refunded_before:
        placing.refund_order(
            sessions, source_id, Mode.TEST, refunded_before, field="amount", gateways=gateways
        )
    copy = create_copy(sessions, source_id, place_target_order=False, cancel_source_order=True)

    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        source = s.get_one(Order, source_id)
        refunds = s.scalars(
            select(PaymentTransaction)
            .where(PaymentTransaction.kind == TransactionKind.REFUND)
            .order_by(PaymentTransaction.idempotency_key)
        ).all()
        at_gateway = s.get_one(TestGatewayTransaction, refunds[-1].idempotency_key)
        stock = s.get_one(Sku, placed_shop.sku.id).stock_quantity
    assert (row.status, row.errors_log) == (CopyStatus.COMPLETED, {})
    assert (source.status, source.payment_status, stock) == (
        OrderStatus.CANCELLED,
        PaymentStatus.REFUNDED,
        10,
    )
    assert [(r.amount_cents, r.status) for r in refunds][-1] == (
        2000 - refunded_before,
        TransactionStatus.SUCCEEDED,
    )
    assert refunds[-1].idempotency_key == f"order:{source_id}:refund:{1 + bool(refunded_before)}"
    assert (at_gateway.outcome, at_gateway.amount_cents) == ("succeeded", 2000 - refunded_before)


def test_a_source_refund_that_times_out_is_asked_again_under_its_key(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10, price=1000, token="tok_flaky")
    source_id = shop.source.id
    for _ in range(FLAKY_FAILURES):  # every key of a tok_flaky payment times out twice
        with pytest.raises(GatewayUnavailableError):
            placing.place_order(sessions, source_id, Mode.TEST, gateways=gateways)
    placing.place_order(sessions, source_id, Mode.TEST, gateways=gateways)
    for _ in range(FLAKY_FAILURES):
        with pytest.raises(GatewayUnavailableError):
            placing.capture_order(sessions, source_id, Mode.TEST, gateways=gateways)
    placing.capture_order(sessions, source_id, Mode.TEST, gateways=gateways)
    copy = create_copy(sessions, source_id, place_target_order=False, cancel_source_order=True)

    outcomes = []
    for _ in range(FLAKY_FAILURES + 1):
        try:
            outcomes.append(execute_one(sessions, copy.id, gateways=gateways, clock=clock))
        except GatewayUnavailableError:
            outcomes.append("timed out")

    with sessions.begin() as s:
        [refund] = s.scalars(
            select(PaymentTransaction).where(PaymentTransaction.kind == TransactionKind.REFUND)
        ).all()
        source = s.get_one(Order, source_id)
        at_gateway = s.get_one(TestGatewayTransaction, refund.idempotency_key)
    assert outcomes == ["timed out", "timed out", Outcome.COMPLETED]
    assert refund.idempotency_key == f"order:{source_id}:refund:1"
    assert (refund.status, source.payment_status) == (
        TransactionStatus.SUCCEEDED,
        PaymentStatus.REFUNDED,
    )
    assert (at_gateway.failures, at_gateway.outcome) == (FLAKY_FAILURES, "succeeded")


def test_a_source_a_copy_cancelled_keeping_what_was_captured_is_caught(
    sessions, gateways, clock, placed_shop
):
    source_id = placed_shop.source.id
    placing.capture_order(sessions, source_id, Mode.TEST, gateways=gateways)
    copy = create_copy(sessions, source_id, place_target_order=False, cancel_source_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED
    with sessions.begin() as s:
        kept = invariants.check(s, [copy.id], {})["source_refunded"]
        s.execute(
            delete(PaymentTransaction).where(PaymentTransaction.kind == TransactionKind.REFUND)
        )  # as if the run had cancelled the source and never refunded it
        broken = invariants.check(s, [copy.id], {})["source_refunded"]

    assert kept == []
    assert broken == [
        f"source order {source_id}, cancelled by a copy, captured 2000 cents and refunded 0"
    ]
