"""The order state machine: transitions, and why an order cannot be placed or cancelled."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from copying.orders import order_states
from copying.orders.order_states import OrderTransitionError
from models import (
    FulfillmentStatus,
    ItemType,
    LineItem,
    Order,
    OrderStatus,
    PaymentStatus,
    Sku,
)
from tests.copying.clock import T0

ALLOWED = {
    (OrderStatus.DRAFT, OrderStatus.PENDING),
    (OrderStatus.PENDING, OrderStatus.PLACED),
    (OrderStatus.PLACED, OrderStatus.APPROVED),
    (OrderStatus.PLACED, OrderStatus.CANCELLED),
    (OrderStatus.APPROVED, OrderStatus.CANCELLED),
}


def _order(**fields) -> Order:
    values = {
        "id": "Order00001",
        "status": OrderStatus.PENDING,
        "payment_status": PaymentStatus.UNPAID,
        "fulfillment_status": FulfillmentStatus.UNFULFILLED,
        "customer_email": "ada@example.com",
        "currency_code": "USD",
        "billing_address_id": "Billing001",
        "shipping_address_id": "Shipping01",
        "payment_source_token": "tok_visa",
        "total_amount_cents": 1000,
        **fields,
    }
    return Order(**values)


def _sku_line(code: str = "TEE") -> LineItem:
    return LineItem(item_type=ItemType.SKUS, sku_code=code, quantity=1)


def _sku(code: str = "TEE", *, do_not_ship: bool = False) -> Sku:
    return Sku(code=code, do_not_ship=do_not_ship)


def test_the_transition_table():
    table = {(a, b) for a, targets in order_states.ORDER_TRANSITIONS.items() for b in targets}
    assert table == ALLOWED
    assert set(order_states.ORDER_TRANSITIONS) == set(OrderStatus)


def _place(order: Order) -> None:
    order_states.place(order, [_sku_line()], {"TEE": _sku()}, T0, authorized=True)


def _cancel(order: Order) -> None:
    order_states.cancel(order, T0)


VERBS: dict[OrderStatus, Callable[[Order], None]] = {
    OrderStatus.PLACED: _place,
    OrderStatus.APPROVED: order_states.approve,
    OrderStatus.CANCELLED: _cancel,
}


@pytest.mark.parametrize("to", list(VERBS))
@pytest.mark.parametrize("start", list(OrderStatus))
def test_each_verb_moves_only_along_the_table(start, to):
    order = _order(status=start)

    if (start, to) in ALLOWED:
        VERBS[to](order)
        assert order.status == to
    else:
        with pytest.raises(OrderTransitionError, match=f"{start} → {to} is not allowed"):
            VERBS[to](order)
        assert order.status == start


@pytest.mark.parametrize("start", list(OrderStatus))
def test_open_order_moves_only_a_draft(start):
    order = _order(status=start)
    order_states.open_order(order)
    assert order.status == (OrderStatus.PENDING if start == OrderStatus.DRAFT else start)


def test_initial_status():
    assert order_states.initial_status(True) == OrderStatus.PENDING
    assert order_states.initial_status(False) == OrderStatus.DRAFT


@pytest.mark.parametrize(
    ("authorized", "payment_status"),
    [(True, PaymentStatus.AUTHORIZED), (False, PaymentStatus.FREE)],
)
def test_place_records_the_time_the_payment_and_what_ships(authorized, payment_status):
    shipping, digital = _order(), _order()

    order_states.place(shipping, [_sku_line()], {"TEE": _sku()}, T0, authorized=authorized)
    order_states.place(
        digital,
        [_sku_line("EBOOK")],
        {"EBOOK": _sku("EBOOK", do_not_ship=True)},
        T0,
        authorized=authorized,
    )

    for order in (shipping, digital):
        assert (order.status, order.placed_at, order.payment_status) == (
            OrderStatus.PLACED,
            T0,
            payment_status,
        )
    assert shipping.fulfillment_status == FulfillmentStatus.UNFULFILLED
    assert digital.fulfillment_status == FulfillmentStatus.NOT_REQUIRED


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (PaymentStatus.AUTHORIZED, PaymentStatus.VOIDED),
        (PaymentStatus.FREE, PaymentStatus.FREE),
        (PaymentStatus.PAID, PaymentStatus.PAID),
    ],
)
def test_cancel_records_the_time_and_voids_an_authorization(before, after):
    order = _order(status=OrderStatus.PLACED, payment_status=before)

    order_states.cancel(order, T0)

    assert (order.status, order.cancelled_at, order.payment_status) == (
        OrderStatus.CANCELLED,
        T0,
        after,
    )


# --- problems_placing --------------------------------------------------------------------


def test_a_complete_order_is_placeable():
    assert order_states.problems_placing(_order(), [_sku_line()], {"TEE": _sku()}) == []
    assert (
        order_states.problems_placing(
            _order(status=OrderStatus.DRAFT), [_sku_line()], {"TEE": _sku()}
        )
        == []
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        pytest.param(
            {"status": OrderStatus.PLACED},
            "order Order00001 is placed, only draft or pending orders can be placed",
            id="placed",
        ),
        pytest.param(
            {"status": OrderStatus.CANCELLED},
            "order Order00001 is cancelled, only draft or pending orders can be placed",
            id="cancelled",
        ),
        pytest.param({"customer_email": None}, "customer_email is missing", id="email"),
        pytest.param({"customer_email": ""}, "customer_email is missing", id="empty-email"),
        pytest.param({"billing_address_id": None}, "billing_address is missing", id="billing"),
        pytest.param(
            {"shipping_address_id": None},
            "shipping_address is missing (some items ship)",
            id="shipping",
        ),
        pytest.param(
            {"total_amount_cents": -1}, "total is negative (-1 cents)", id="negative-total"
        ),
        pytest.param(
            {"payment_source_token": None},
            "payment_source is missing (the total is not zero)",
            id="payment-source",
        ),
    ],
)
def test_problems_placing_reasons(fields, reason):
    order = _order(**fields)
    assert order_states.problems_placing(order, [_sku_line()], {"TEE": _sku()}) == [reason]


def test_an_order_without_lines_is_not_placeable():
    # Nothing ships either, so no shipping address is asked for.
    order = _order(shipping_address_id=None)
    assert order_states.problems_placing(order, [], {}) == ["has no line items"]


def test_nothing_that_ships_needs_no_shipping_address():
    order = _order(shipping_address_id=None)
    lines = [_sku_line("EBOOK"), LineItem(item_type=ItemType.GIFT_CARDS, quantity=1)]
    skus = {"EBOOK": _sku("EBOOK", do_not_ship=True)}
    assert order_states.problems_placing(order, lines, skus) == []


def test_a_free_order_needs_no_payment_source():
    order = _order(payment_source_token=None, total_amount_cents=0)
    assert order_states.problems_placing(order, [_sku_line()], {"TEE": _sku()}) == []


def test_problems_placing_lists_every_reason():
    order = _order(
        status=OrderStatus.APPROVED,
        customer_email=None,
        billing_address_id=None,
        shipping_address_id=None,
        payment_source_token=None,
    )
    assert order_states.problems_placing(order, [_sku_line()], {"TEE": _sku()}) == [
        "order Order00001 is approved, only draft or pending orders can be placed",
        "customer_email is missing",
        "billing_address is missing",
        "shipping_address is missing (some items ship)",
        "payment_source is missing (the total is not zero)",
    ]


# --- problems_cancelling ------------------------------------------------------------------


@pytest.mark.parametrize("status", [OrderStatus.PLACED, OrderStatus.APPROVED])
@pytest.mark.parametrize(
    "fulfillment", [FulfillmentStatus.UNFULFILLED, FulfillmentStatus.NOT_REQUIRED]
)
def test_placed_or_approved_unshipped_orders_are_cancellable(status, fulfillment):
    order = _order(status=status, fulfillment_status=fulfillment)
    assert order_states.problems_cancelling(order) == []


@pytest.mark.parametrize("status", [OrderStatus.DRAFT, OrderStatus.PENDING, OrderStatus.CANCELLED])
def test_problems_cancelling_status_reason(status):
    assert order_states.problems_cancelling(_order(status=status)) == [
        f"order Order00001 is {status}, only placed or approved orders can be cancelled"
    ]


@pytest.mark.parametrize(
    ("fulfillment", "words"),
    [(FulfillmentStatus.IN_PROGRESS, "in progress"), (FulfillmentStatus.FULFILLED, "fulfilled")],
)
def test_problems_cancelling_fulfillment_reason(fulfillment, words):
    order = _order(status=OrderStatus.PLACED, fulfillment_status=fulfillment)
    assert order_states.problems_cancelling(order) == [
        f"order Order00001 is {words}, only unfulfilled orders can be cancelled"
    ]
