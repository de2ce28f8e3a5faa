"""Placing the target: stock held once, one authorization under the copy's key, never twice."""

from __future__ import annotations

from datetime import timedelta

import pytest

from copying.errors import TransientError
from copying.runs import Outcome, RunConfig
from models import (
    AuthorizationStatus,
    CopyStatus,
    CopyStep,
    FulfillmentStatus,
    ItemType,
    Order,
    OrderCopy,
    OrderStatus,
    PaymentStatus,
    Sku,
)
from tests.factories import (
    Line,
    authorizations,
    copy_events,
    create_copy,
    customer_orders,
    gateway_charge,
    make_address,
    make_order,
    make_shop,
    make_sku,
)
from tests.runs import execute_one


def test_place_reserves_stock_once_and_authorizes_under_the_copy_key(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10, price=1250)

    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    key = f"order_copy:{copy.id}:place"
    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        [payment] = authorizations(s, target.id)
        charge = gateway_charge(s, key)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
    assert (row.status, row.step) == (CopyStatus.COMPLETED, CopyStep.TARGET_PLACED)
    assert (row.errors_log, row.errors_count) == ({}, 0)
    assert (target.status, target.payment_status) == (OrderStatus.PLACED, PaymentStatus.AUTHORIZED)
    assert target.fulfillment_status == FulfillmentStatus.UNFULFILLED
    assert target.placed_at == clock.now
    assert stock == 8
    assert (payment.idempotency_key, payment.status) == (key, AuthorizationStatus.AUTHORIZED)
    assert (payment.amount_cents, payment.currency_code, payment.gateway) == (2500, "USD", "test")
    assert (charge.outcome, charge.amount_cents, charge.token) == ("authorized", 2500, "tok_visa")
    assert payment.gateway_reference == charge.reference
    assert charge.reference.startswith("test_")
    # The source order is left as it was.
    assert shop.source.status == OrderStatus.PENDING


def test_declined_card_fails_the_copy_and_gives_the_stock_back(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10, token="tok_declined")

    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        [payment] = authorizations(s, target.id)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
    assert row.status == CopyStatus.FAILED
    assert row.errors_log == {"payment": ["payment declined: card declined"]}
    assert row.errors_count == 1
    assert (row.failed_at, row.completed_at) == (clock.now, None)
    assert row.step == CopyStep.TARGET_BUILT
    assert (target.status, target.payment_status) == (OrderStatus.PENDING, PaymentStatus.UNPAID)
    assert target.placed_at is None
    assert stock == 10
    assert (payment.idempotency_key, payment.status, payment.message) == (
        f"order_copy:{copy.id}:place",
        AuthorizationStatus.DECLINED,
        "card declined",
    )


def test_a_zero_total_order_is_placed_free_without_a_payment_source(sessions, gateways, clock):
    with sessions.begin() as s:
        sample = make_sku(s, "SAMPLE", price=0, stock=5)
        source = make_order(s, [Line(sample, 2)])

    copy = create_copy(sessions, source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        payments = authorizations(s, target.id)
        stock = s.get_one(Sku, sample.id).stock_quantity
        charge = gateway_charge(s, f"order_copy:{copy.id}:place")
    assert (row.status, row.step, row.errors_log) == (
        CopyStatus.COMPLETED,
        CopyStep.TARGET_PLACED,
        {},
    )
    assert target.total_amount_cents == 0
    assert target.payment_source_token is None
    assert (target.status, target.payment_status) == (OrderStatus.PLACED, PaymentStatus.FREE)
    assert target.placed_at == clock.now
    assert (payments, charge) == ([], None)
    assert stock == 3


def test_an_adjustment_can_make_the_total_zero(sessions, gateways, clock):
    with sessions.begin() as s:
        tee = make_sku(s, "TEE", price=1000, stock=5)
        source = make_order(
            s,
            [
                Line(tee, 1),
                Line(item_type=ItemType.ADJUSTMENTS, name="Voucher", unit_amount_cents=-1000),
            ],
        )

    copy = create_copy(sessions, source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        target = s.get_one(Order, s.get_one(OrderCopy, copy.id).target_order_id)
    assert (target.total_amount_cents, target.payment_status) == (0, PaymentStatus.FREE)
    assert target.status == OrderStatus.PLACED


def test_placing_a_paying_order_without_payment_source_fails(sessions, gateways, clock):
    with sessions.begin() as s:
        tee = make_sku(s, "TEE", price=1000, stock=5)
        source = make_order(s, [Line(tee, 1)])

    copy = create_copy(sessions, source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        stock = s.get_one(Sku, tee.id).stock_quantity
        payments = authorizations(s, target.id)
    assert row.errors_log == {"target_order": ["payment_source is missing (the total is not zero)"]}
    assert row.errors_count == 1
    assert (row.failed_at, row.step) == (clock.now, CopyStep.TARGET_BUILT)
    assert (target.status, target.payment_status) == (OrderStatus.PENDING, PaymentStatus.UNPAID)
    assert (stock, payments) == (5, [])


def test_placing_needs_a_shipping_address_only_when_something_ships(sessions, gateways, clock):
    with sessions.begin() as s:
        ebook = make_sku(s, "EBOOK", price=0, do_not_ship=True)
        tee = make_sku(s, "TEE", price=0)
        digital = make_order(s, [Line(ebook, 1)], shipping=False)
        physical = make_order(s, [Line(tee, 1)], shipping=False)

    digital_copy = create_copy(sessions, digital.id, place_target_order=True)
    physical_copy = create_copy(sessions, physical.id, place_target_order=True)
    assert execute_one(sessions, digital_copy.id, gateways=gateways, clock=clock) == (
        Outcome.COMPLETED
    )
    assert execute_one(sessions, physical_copy.id, gateways=gateways, clock=clock) == (
        Outcome.FAILED
    )

    with sessions.begin() as s:
        digital_target = s.get_one(Order, s.get_one(OrderCopy, digital_copy.id).target_order_id)
        physical_row = s.get_one(OrderCopy, physical_copy.id)
    assert digital_target.status == OrderStatus.PLACED
    assert digital_target.fulfillment_status == FulfillmentStatus.NOT_REQUIRED
    assert physical_row.errors_log == {
        "target_order": ["shipping_address is missing (some items ship)"]
    }


def test_placing_needs_an_email_and_a_billing_address(sessions, gateways, clock):
    with sessions.begin() as s:
        source = make_order(s, [Line(make_sku(s, price=0), 1)], email=False, billing=False)
        source.shipping_address_id = make_address(s).id

    copy = create_copy(sessions, source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
    assert row.errors_log == {
        "target_order": ["customer_email is missing", "billing_address is missing"]
    }
    assert row.errors_count == 2


def test_a_flaky_gateway_parks_the_copy_and_the_third_run_places_it_once(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10, token="tok_flaky")
    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    key = f"order_copy:{copy.id}:place"

    for run in (1, 2):
        with pytest.raises(TransientError, match="tok_flaky timed out"):
            execute_one(sessions, copy.id, gateways=gateways, clock=clock)
        with sessions.begin() as s:
            row = s.get_one(OrderCopy, copy.id)
            stock = s.get_one(Sku, shop.sku.id).stock_quantity
            payments = authorizations(s, row.target_order_id)
            charge = gateway_charge(s, key)
        # Parked: still ours on paper, but the lease is already over, so the next run claims it.
        assert (row.status, row.attempt, row.claims) == (CopyStatus.IN_PROGRESS, run, run)
        assert row.lease_expires_at == clock.now
        assert row.step == CopyStep.STOCK_RESERVED
        assert (row.errors_log, row.errors_count) == ({}, 0)
        assert (stock, payments) == (8, [])
        assert (charge.failures, charge.outcome) == (run, None)
        clock.advance(1)

    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        [payment] = authorizations(s, target.id)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
        charge = gateway_charge(s, key)
        orders = customer_orders(s, shop.customer.id)
        kinds = [e.kind for e in copy_events(s, copy.id)]
    assert (row.status, row.attempt, row.completed_at) == (CopyStatus.COMPLETED, 3, clock.now)
    assert row.started_at == clock.now - timedelta(seconds=2)
    assert (target.status, target.payment_status) == (OrderStatus.PLACED, PaymentStatus.AUTHORIZED)
    assert [order.id for order in orders] == [shop.source.id, target.id]
    assert (payment.idempotency_key, payment.status) == (key, AuthorizationStatus.AUTHORIZED)
    assert (charge.failures, charge.outcome, charge.reference) == (
        2,
        "authorized",
        payment.gateway_reference,
    )
    assert stock == 8
    assert kinds.count("transient_error") == 2
    assert kinds.count("claimed") == 3


@pytest.mark.parametrize("skip_errors", [False, True])
def test_a_gateway_down_for_every_run_fails_the_copy_and_frees_its_stock(
    sessions, gateways, clock, skip_errors
):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10, token="tok_flaky")
    copy = create_copy(sessions, shop.source.id, place_target_order=True, skip_errors=skip_errors)
    config = RunConfig(max_claims=2)

    with pytest.raises(TransientError):
        execute_one(sessions, copy.id, gateways=gateways, config=config, clock=clock)
    clock.advance(1)
    outcome = execute_one(sessions, copy.id, gateways=gateways, config=config, clock=clock)

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
    assert outcome == Outcome.FAILED
    assert row.status == CopyStatus.FAILED
    assert row.errors_log == {
        "order_copy": ["gave up after 2 attempts: test gateway: tok_flaky timed out"]
    }
    assert (row.errors_count, row.failed_at, row.lease_expires_at) == (1, clock.now, None)
    assert row.step == CopyStep.TARGET_BUILT
    assert target.status == OrderStatus.PENDING
    assert stock == 10


def test_a_gateway_that_is_not_configured_is_an_error(sessions, clock):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=1, stock=10)

    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways={}, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
    assert row.errors_log == {
        "payment": ["payment declined: payment gateway 'test' is not configured"]
    }
    assert stock == 10
