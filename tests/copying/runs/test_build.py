"""Building the target: what is copied (frozen, as it was sold), and the line errors that
stop it."""

from __future__ import annotations

import pytest

from copying.runs import Outcome
from models import (
    Address,
    CopyStatus,
    CopyStep,
    ItemType,
    LineItem,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    PaymentStatus,
    Sku,
)
from tests.factories import (
    Line,
    create_copy,
    customer_orders,
    make_customer,
    make_order,
    make_sku,
    order_lines,
)
from tests.runs import execute_one

SIZE_M = [{"name": "size", "value": "M"}, {"name": "engraving", "value": "A.L."}]


def _line_tuples(lines: list[LineItem]) -> list[tuple]:
    return [
        (
            line.position,
            line.item_type,
            line.sku_code,
            line.name,
            line.quantity,
            line.unit_amount_cents,
            line.total_amount_cents,
            line.options,
            line.metadata_,
        )
        for line in lines
    ]


def test_lines_copied_frozen_with_options_promotions_kept_shipments_dropped(
    sessions, gateways, clock
):
    with sessions.begin() as s:
        tee = make_sku(s, "TEE", price=1500, stock=10)
        mug = make_sku(s, "MUG", price=800, stock=10)
        source = make_order(
            s,
            [
                Line(tee, 2, options=SIZE_M),
                Line(item_type=ItemType.SHIPMENTS, name="Standard shipping", unit_amount_cents=700),
                Line(mug, 1),
                Line(item_type=ItemType.ADJUSTMENTS, name="Loyalty", unit_amount_cents=-300),
                Line(item_type=ItemType.GIFT_CARDS, name="Gift card", unit_amount_cents=2500),
                Line(item_type=ItemType.PROMOTIONS, name="Black Friday", unit_amount_cents=-100),
            ],
        )
        order_lines(s, source.id)[0].metadata_ = {"gift_wrap": True}
        # The catalog changes after the source order was made.
        tee.unit_amount_cents, tee.name = 1700, "Tee, 2027 edition"

    copy = create_copy(sessions, source.id)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        target_lines = order_lines(s, target.id)
        source_lines = order_lines(s, source.id)
    # Frozen: each line as it was sold, not repriced (the catalog's TEE is 1700 by now).
    assert _line_tuples(target_lines) == [
        (0, ItemType.SKUS, "TEE", "Item TEE", 2, 1500, 3000, SIZE_M, {"gift_wrap": True}),
        (1, ItemType.SKUS, "MUG", "Item MUG", 1, 800, 800, [], {}),
        (2, ItemType.ADJUSTMENTS, None, "Loyalty", 1, -300, -300, [], {}),
        (3, ItemType.GIFT_CARDS, None, "Gift card", 1, 2500, 2500, [], {}),
        (4, ItemType.PROMOTIONS, None, "Black Friday", 1, -100, -100, [], {}),
    ]
    assert {line.order_id for line in target_lines} == {target.id}
    assert {line.mode for line in target_lines} == {Mode.TEST}
    assert not {line.id for line in target_lines} & {line.id for line in source_lines}
    assert (
        target.subtotal_amount_cents,
        target.shipping_amount_cents,
        target.adjustment_amount_cents,
        target.discount_amount_cents,
        target.total_amount_cents,
    ) == (6300, 0, -300, -100, 5900)
    assert target.frozen
    # The source keeps its own prices.
    assert [(line.unit_amount_cents, line.total_amount_cents) for line in source_lines[:1]] == [
        (1500, 3000)
    ]


def test_target_is_a_new_pending_order_for_the_same_customer(sessions, gateways, clock):
    with sessions.begin() as s:
        customer = make_customer(s)
        source = make_order(s, [Line(make_sku(s), 1)], customer=customer)

    copy = create_copy(sessions, source.id, reuse_wallet=False)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        source = s.get_one(Order, source.id)
    assert target.id != source.id
    assert target.number != source.number
    assert (target.customer_id, target.customer_email) == (customer.id, customer.email)
    assert (target.currency_code, target.mode) == (source.currency_code, source.mode)
    assert (target.status, target.payment_status) == (OrderStatus.PENDING, PaymentStatus.UNPAID)
    assert (target.placed_at, target.cancelled_at) == (None, None)
    assert target.customer_payment_source_id is None
    assert target.payment_source_token is None
    assert row.step == CopyStep.TARGET_BUILT


def _address_fields(address: Address) -> dict:
    return {column: getattr(address, column) for column in Address.CLONED}


def test_addresses_are_cloned_with_new_ids(sessions, gateways, clock):
    with sessions.begin() as s:
        source = make_order(s, [Line(make_sku(s), 1)])

    copy = create_copy(sessions, source.id)
    execute_one(sessions, copy.id, gateways=gateways, clock=clock)

    with sessions.begin() as s:
        target = s.get_one(Order, s.get_one(OrderCopy, copy.id).target_order_id)
        pairs = [
            (
                s.get_one(Address, source.billing_address_id),
                s.get_one(Address, target.billing_address_id),
            ),
            (
                s.get_one(Address, source.shipping_address_id),
                s.get_one(Address, target.shipping_address_id),
            ),
        ]
    assert target.billing_address_id != target.shipping_address_id
    for original, clone in pairs:
        assert clone.id != original.id
        assert _address_fields(clone) == _address_fields(original)
    assert [clone.city for _, clone in pairs] == ["Florence", "Milan"]


def test_one_address_for_billing_and_shipping_stays_one(sessions, gateways, clock):
    with sessions.begin() as s:
        source = make_order(s, [Line(make_sku(s), 1)], shipping=False)
        source.shipping_address_id = source.billing_address_id

    copy = create_copy(sessions, source.id)
    execute_one(sessions, copy.id, gateways=gateways, clock=clock)

    with sessions.begin() as s:
        target = s.get_one(Order, s.get_one(OrderCopy, copy.id).target_order_id)
    assert target.billing_address_id == target.shipping_address_id
    assert target.billing_address_id != source.billing_address_id


def test_skus_are_checked_against_the_catalog_of_the_copy_mode(sessions, gateways, clock):
    with sessions.begin() as s:
        make_sku(s, "TEE", price=1100, mode=Mode.TEST, discontinued=True)
        live_tee = make_sku(s, "TEE", price=2200, mode=Mode.LIVE)
        source = make_order(s, [Line(live_tee, 1)], mode=Mode.LIVE)
        live_tee.unit_amount_cents = 2300

    copy = create_copy(sessions, source.id, mode=Mode.LIVE)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        target = s.get_one(Order, s.get_one(OrderCopy, copy.id).target_order_id)
        lines = order_lines(s, target.id)
    assert target.mode == Mode.LIVE
    assert [(line.mode, line.unit_amount_cents) for line in lines] == [(Mode.LIVE, 2200)]


# --- line errors ------------------------------------------------------------------------


def _with_bad_line(s, change_bad_sku) -> tuple[Order, Sku, Sku]:
    good = make_sku(s, "GOOD", price=500, stock=10)
    bad = make_sku(s, "BLUE-TEE", price=900, stock=10)
    source = make_order(s, [Line(good, 1), Line(bad, 2)])
    change_bad_sku(s, bad)
    return source, good, bad


def _out_of_stock(s, sku):
    sku.stock_quantity = 1


def _discontinued(s, sku):
    sku.discontinued = True


def _unknown(s, sku):
    s.delete(sku)


def _other_currency(s, sku):
    sku.currency_code = "EUR"


LINE_ERRORS = [
    pytest.param(_out_of_stock, "SKU BLUE-TEE is out of stock (2 requested, 1 left)", id="stock"),
    pytest.param(_discontinued, "SKU BLUE-TEE is discontinued", id="discontinued"),
    pytest.param(_unknown, "SKU BLUE-TEE is unknown", id="unknown"),
    pytest.param(
        _other_currency, "SKU BLUE-TEE is priced in EUR, the order is in USD", id="currency"
    ),
]


@pytest.mark.parametrize(("change", "message"), LINE_ERRORS)
def test_a_bad_sku_line_fails_the_copy_and_keeps_a_pending_target(
    sessions, gateways, clock, change, message
):
    with sessions.begin() as s:
        source, _, _ = _with_bad_line(s, change)

    copy = create_copy(sessions, source.id)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        lines = order_lines(s, target.id)
    assert row.status == CopyStatus.FAILED
    assert row.errors_log == {"line_items": [message]}
    assert row.errors_count == 1
    assert (row.failed_at, row.completed_at) == (clock.now, None)
    assert row.step == CopyStep.TARGET_BUILT
    assert target.status == OrderStatus.PENDING
    assert [(line.sku_code, line.quantity) for line in lines] == [("GOOD", 1)]
    assert target.total_amount_cents == 500


def test_stock_is_checked_against_all_lines_of_a_sku(sessions, gateways, clock):
    with sessions.begin() as s:
        tee = make_sku(s, "TEE", stock=3)
        source = make_order(s, [Line(tee, 2), Line(tee, 2)])

    copy = create_copy(sessions, source.id)
    execute_one(sessions, copy.id, gateways=gateways, clock=clock)

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        lines = order_lines(s, row.target_order_id)
    assert row.errors_log == {"line_items": ["SKU TEE is out of stock (4 requested, 3 left)"]}
    assert [(line.sku_code, line.quantity) for line in lines] == [("TEE", 2)]


def test_every_bad_line_is_an_error(sessions, gateways, clock):
    with sessions.begin() as s:
        gone = make_sku(s, "GONE")
        old = make_sku(s, "OLD", discontinued=True)
        short = make_sku(s, "SHORT", stock=0)
        source = make_order(s, [Line(gone, 1), Line(old, 1), Line(short, 1)])
        s.delete(gone)

    copy = create_copy(sessions, source.id)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        lines = order_lines(s, target.id)
    assert row.errors_log == {
        "line_items": [
            "SKU GONE is unknown",
            "SKU OLD is discontinued",
            "SKU SHORT is out of stock (1 requested, 0 left)",
        ]
    }
    assert row.errors_count == 3
    # Nothing left to copy: the target stays a draft, kept for a person to fix.
    assert (target.status, lines, target.total_amount_cents) == (OrderStatus.DRAFT, [], 0)


@pytest.mark.parametrize("skip_errors", [False, True])
def test_a_source_with_nothing_to_copy_fails_without_a_target(
    sessions, gateways, clock, skip_errors
):
    with sessions.begin() as s:
        empty = make_order(s, [])
        only_shipping = make_order(
            s, [Line(item_type=ItemType.SHIPMENTS, name="Express", unit_amount_cents=900)]
        )

    for source in (empty, only_shipping):
        copy = create_copy(sessions, source.id, skip_errors=skip_errors, place_target_order=True)
        outcome = execute_one(sessions, copy.id, gateways=gateways, clock=clock)

        with sessions.begin() as s:
            row = s.get_one(OrderCopy, copy.id)
            orders = customer_orders(s, source.customer_id)
        assert outcome == Outcome.FAILED
        assert row.status == CopyStatus.FAILED
        assert row.errors_log == {
            "line_items": [f"source order {source.id} has no line items to copy"]
        }
        assert row.errors_count == 1
        assert (row.target_order_id, row.step) == (None, None)
        assert (row.failed_at, row.completed_at) == (clock.now, None)
        assert [order.id for order in orders] == [source.id]
