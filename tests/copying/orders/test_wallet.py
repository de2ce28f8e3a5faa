"""Wallet reuse: the target is charged to the wallet entry the source order used."""

from __future__ import annotations

from datetime import date

import pytest

from copying.runs import Outcome
from models import (
    CopyStatus,
    CustomerPaymentSource,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    Sku,
)
from tests.factories import (
    Line,
    authorizations,
    create_copy,
    make_customer,
    make_order,
    make_shop,
    make_sku,
    make_wallet_entry,
)
from tests.runs import execute_one


def _run(sessions, gateways, clock, source_id, **options):
    copy = create_copy(sessions, source_id, **options)
    outcome = execute_one(sessions, copy.id, gateways=gateways, clock=clock)
    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get(Order, row.target_order_id) if row.target_order_id else None
    return outcome, row, target


def test_the_wallet_entry_is_attached_to_the_target(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s)
        shop.entry.payment_method, shop.entry.gateway = "credit_card", "test"

    outcome, row, target = _run(sessions, gateways, clock, shop.source.id)

    assert outcome == Outcome.COMPLETED
    assert (row.errors_log, row.errors_count) == ({}, 0)
    assert target.customer_payment_source_id == shop.entry.id
    assert (target.payment_method, target.payment_gateway, target.payment_source_token) == (
        "credit_card",
        "test",
        "tok_visa",
    )


def test_reuse_wallet_false_leaves_the_target_without_payment_source(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s)

    outcome, row, target = _run(sessions, gateways, clock, shop.source.id, reuse_wallet=False)

    assert outcome == Outcome.COMPLETED
    assert row.reuse_wallet is False
    assert (target.customer_payment_source_id, target.payment_method) == (None, None)
    assert (target.payment_gateway, target.payment_source_token) == (None, None)


def test_a_source_paid_without_the_wallet_has_nothing_to_reuse(sessions, gateways, clock):
    with sessions.begin() as s:
        source = make_order(s, [Line(make_sku(s), 1)])

    outcome, row, target = _run(sessions, gateways, clock, source.id)

    assert outcome == Outcome.COMPLETED
    assert (row.errors_log, row.errors_count) == ({}, 0)
    assert target.customer_payment_source_id is None


def _expire(s, shop):
    shop.entry.expires_on = date(2026, 10, 31)


def _disable(s, shop):
    shop.entry.disabled = True


def _delete(s, shop):
    s.delete(shop.entry)


def _other_customer(s, shop):
    shop.entry.customer_id = make_customer(s).id


def _other_mode(s, shop):
    shop.entry.mode = Mode.LIVE


WALLET_PROBLEMS = [
    pytest.param(_expire, "wallet entry {id} expired on 2026-10-31", id="expired"),
    pytest.param(_disable, "wallet entry {id} is disabled", id="disabled"),
    pytest.param(_delete, "wallet entry {id} no longer exists", id="missing"),
    pytest.param(_other_customer, "wallet entry {id} belongs to another customer", id="customer"),
    pytest.param(_other_mode, "wallet entry {id} no longer exists", id="other-mode"),
]


@pytest.mark.parametrize(("change", "message"), WALLET_PROBLEMS)
def test_an_unusable_wallet_entry_fails_the_copy(sessions, gateways, clock, change, message):
    with sessions.begin() as s:
        shop = make_shop(s)
        change(s, shop)

    outcome, row, target = _run(sessions, gateways, clock, shop.source.id)

    assert outcome == Outcome.FAILED
    assert row.status == CopyStatus.FAILED
    assert row.errors_log == {"payment_source": [message.format(id=shop.entry.id)]}
    assert row.errors_count == 1
    assert (row.failed_at, row.completed_at) == (clock.now, None)
    # The target is kept, pending, without a payment source.
    assert target.status == OrderStatus.PENDING
    assert (target.customer_payment_source_id, target.payment_source_token) == (None, None)


def test_an_unusable_wallet_entry_stops_placing(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s, stock=10, quantity=2)
        shop.entry.disabled = True

    outcome, row, target = _run(sessions, gateways, clock, shop.source.id, place_target_order=True)

    assert outcome == Outcome.FAILED
    assert row.errors_log == {"payment_source": [f"wallet entry {shop.entry.id} is disabled"]}
    with sessions.begin() as s:
        assert s.get_one(Sku, shop.sku.id).stock_quantity == 10
        assert authorizations(s, target.id) == []
    assert target.status == OrderStatus.PENDING


def test_an_entry_expiring_today_is_still_good(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s)
        shop.entry.expires_on = clock.now.date()

    outcome, _, target = _run(sessions, gateways, clock, shop.source.id)

    assert outcome == Outcome.COMPLETED
    assert target.customer_payment_source_id == shop.entry.id


def test_an_entry_without_expiry_is_good(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s)
        shop.entry.expires_on = None

    outcome, _, target = _run(sessions, gateways, clock, shop.source.id)

    assert outcome == Outcome.COMPLETED
    assert target.customer_payment_source_id == shop.entry.id


def test_the_copy_entry_overrides_the_source_entry(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s)
        renewal_card = make_wallet_entry(s, shop.customer, token="tok_visa")
        renewal_card.payment_method = "debit_card"

    outcome, _, target = _run(
        sessions, gateways, clock, shop.source.id, customer_payment_source_id=renewal_card.id
    )

    assert outcome == Outcome.COMPLETED
    assert target.customer_payment_source_id == renewal_card.id
    assert target.payment_method == "debit_card"


def test_a_missing_override_entry_does_not_fall_back_to_the_source_entry(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s)
        renewal_card = make_wallet_entry(s, shop.customer)
    with sessions.begin() as s:
        s.delete(s.get_one(CustomerPaymentSource, renewal_card.id))

    outcome, row, target = _run(
        sessions, gateways, clock, shop.source.id, customer_payment_source_id=renewal_card.id
    )

    assert outcome == Outcome.FAILED
    assert row.errors_log == {
        "payment_source": [f"wallet entry {renewal_card.id} no longer exists"]
    }
    assert target.customer_payment_source_id is None
