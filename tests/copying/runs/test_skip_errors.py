"""skip_errors: a copy with a target completes with its errors on record; without one it fails."""

from __future__ import annotations

from copying.copies import lifecycle
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
    Sku,
)
from tests.factories import (
    Line,
    authorizations,
    create_copy,
    customer_orders,
    make_customer,
    make_order,
    make_sku,
    make_wallet_entry,
    order_lines,
)
from tests.runs import execute_one


def _two_lines_one_short(s, stock_of_short: int = 0):
    customer = make_customer(s)
    entry = make_wallet_entry(s, customer)
    good = make_sku(s, "GOOD", price=500, stock=10)
    short = make_sku(s, "SHORT", price=900, stock=stock_of_short)
    source = make_order(s, [Line(good, 2), Line(short, 1)], customer=customer, wallet_entry=entry)
    return source, good, short


def test_line_errors_are_recorded_and_the_copy_completes(sessions, gateways, clock):
    with sessions.begin() as s:
        source, _, _ = _two_lines_one_short(s)

    copy = create_copy(sessions, source.id, skip_errors=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        lines = order_lines(s, target.id)
    assert row.status == CopyStatus.COMPLETED
    assert row.errors_log == {"line_items": ["SKU SHORT is out of stock (1 requested, 0 left)"]}
    assert row.errors_count == 1
    assert (row.completed_at, row.failed_at) == (clock.now, None)
    assert target.status == OrderStatus.PENDING
    assert [(line.sku_code, line.quantity) for line in lines] == [("GOOD", 2)]


def test_the_valid_lines_are_placed(sessions, gateways, clock):
    with sessions.begin() as s:
        source, good, short = _two_lines_one_short(s)

    copy = create_copy(sessions, source.id, skip_errors=True, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        [payment] = authorizations(s, target.id)
        stocks = [s.get_one(Sku, sku.id).stock_quantity for sku in (good, short)]
    assert row.errors_log == {"line_items": ["SKU SHORT is out of stock (1 requested, 0 left)"]}
    assert row.step == CopyStep.TARGET_PLACED
    assert (target.status, target.payment_status) == (OrderStatus.PLACED, PaymentStatus.AUTHORIZED)
    assert (payment.amount_cents, payment.status) == (1000, AuthorizationStatus.AUTHORIZED)
    assert stocks == [8, 0]


def test_the_same_errors_fail_the_copy_without_skip_errors(sessions, gateways, clock):
    with sessions.begin() as s:
        source, good, _ = _two_lines_one_short(s)

    copy = create_copy(sessions, source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        stock = s.get_one(Sku, good.id).stock_quantity
        payments = authorizations(s, target.id)
    assert row.errors_log == {"line_items": ["SKU SHORT is out of stock (1 requested, 0 left)"]}
    assert (row.status, row.failed_at, row.completed_at) == (CopyStatus.FAILED, clock.now, None)
    # Stopped at the first error: nothing placed, nothing held, nothing charged.
    assert target.status == OrderStatus.PENDING
    assert (stock, payments) == (10, [])


def test_errors_of_several_stages_are_all_recorded(sessions, gateways, clock):
    with sessions.begin() as s:
        source, _, _ = _two_lines_one_short(s)
        entry_id = source.customer_payment_source_id
        s.delete(s.get_one(CustomerPaymentSource, entry_id))

    copy = create_copy(sessions, source.id, skip_errors=True, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
    assert row.errors_log == {
        "line_items": ["SKU SHORT is out of stock (1 requested, 0 left)"],
        "payment_source": [f"wallet entry {entry_id} no longer exists"],
        "target_order": ["payment_source is missing (the total is not zero)"],
    }
    assert row.errors_count == 3
    assert row.status == CopyStatus.COMPLETED
    assert target.status == OrderStatus.PENDING


def test_skip_errors_still_fails_when_there_is_no_target(sessions, gateways, clock):
    with sessions.begin() as s:
        source = make_order(s, [])

    copy = create_copy(sessions, source.id, skip_errors=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        orders = customer_orders(s, source.customer_id)
    assert (row.status, row.target_order_id) == (CopyStatus.FAILED, None)
    assert row.errors_log == {"line_items": [f"source order {source.id} has no line items to copy"]}
    assert (row.errors_count, row.failed_at, row.completed_at) == (1, clock.now, None)
    assert [order.id for order in orders] == [source.id]


def test_a_copy_that_built_no_target_never_cancels_its_source_even_retried(
    sessions, gateways, clock
):
    """skip_errors with cancel_source_order and a source with nothing to copy: the source
    stays (cancelling it would leave the customer with no order at all), the copy fails,
    and so does its retry (found by the chaos suite: a retried copy completed without a
    target, its source cancelled)."""
    with sessions.begin() as s:
        source = make_order(s, [])
        source.status = OrderStatus.PLACED  # placed, then its lines all gone: nothing to copy
        source.fulfillment_status = FulfillmentStatus.UNFULFILLED
    copy = create_copy(sessions, source.id, skip_errors=True, cancel_source_order=True)

    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED
    with sessions.begin() as s:
        lifecycle.retry(s, copy.id, Mode.TEST, by="test", now=clock.now)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        assert s.get_one(Order, source.id).status == OrderStatus.PLACED
    assert (row.status, row.target_order_id, row.step) == (CopyStatus.FAILED, None, None)
    assert row.errors_log == {
        "line_items": [f"source order {source.id} has no line items to copy"],
        "source_order": ["not cancelled: no target order was built"],
    }
