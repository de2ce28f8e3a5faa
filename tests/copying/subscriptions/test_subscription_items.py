"""Renewals in automatic mode through the pipeline: a chunk reads every renewal's items in
one statement, and each renewal's target is its own subscription's items (or, without
items, its whole source order), whatever else shares the chunk."""

from __future__ import annotations

from datetime import timedelta

from copying.orders.gateways import TestGateway
from copying.runs import Outcome, execute
from models import OrderCopy, OrderSubscriptionItem, Sku, db, new_public_id, utcnow
from tests.copying.clock import FixedClock
from tests.copying.statements import counting_statements
from tests.factories import (
    Line,
    create_copy,
    make_customer,
    make_order,
    make_sku,
    make_subscription,
    make_wallet_entry,
    order_lines,
)
from tests.invariants import violations

PLACING = {"place_target_order": True, "reuse_wallet": True}
STOCK = 100


def _item(
    subscription_id: str, sku: Sku, quantity: int, unit: int, *, nth: int = 0
) -> OrderSubscriptionItem:
    """An item; ``nth``: its place among its subscription's (they renew oldest first)."""
    return OrderSubscriptionItem(
        id=new_public_id(),
        order_subscription_id=subscription_id,
        sku_code=sku.code,
        quantity=quantity,
        unit_amount_cents=unit,
        metadata_={},
        created_at=utcnow() + timedelta(seconds=nth),
    )


def _renewals(sessions, clock, n: int, *, items: bool) -> tuple[list[str], list[str]]:
    """``n`` subscriptions, each of its own customer's order of two SKUs (2 of the first,
    1 of the second), each with one item (3 of the second SKU at 250) when ``items``; a
    pending renewal copy of each. Returns the copies' ids and the SKU codes."""
    with sessions.begin() as s:
        first, second = make_sku(s, stock=STOCK), make_sku(s, stock=STOCK)
        subscriptions = []
        for _ in range(n):
            customer = make_customer(s)
            entry = make_wallet_entry(s, customer)
            source = make_order(
                s, [Line(first, 2), Line(second, 1)], customer=customer, wallet_entry=entry
            )
            subscription = make_subscription(s, source, starts_at=clock.now - timedelta(days=1))
            if items:
                s.add(_item(subscription.id, second, 3, 250))
            subscriptions.append(subscription)
        codes = [first.code, second.code]
        pairs = [(sub.id, sub.source_order_id) for sub in subscriptions]
    copies = [
        create_copy(sessions, source_id, now=clock.now, order_subscription_id=sub_id, **PLACING).id
        for sub_id, source_id in pairs
    ]
    return copies, codes


def _lines(sessions, copy_id: str) -> list[tuple[str | None, int, int]]:
    with sessions.begin() as s:
        target = s.get_one(OrderCopy, copy_id).target_order_id
        assert target is not None
        return [(li.sku_code, li.quantity, li.unit_amount_cents) for li in order_lines(s, target)]


def test_a_chunk_of_renewals_reads_their_items_in_one_statement(sessions, gateways, config):
    clock = FixedClock()
    with counting_statements() as one_call:
        TestGateway(db.engine).authorize(
            idempotency_key=f"test_subscription_items:{new_public_id()}",
            order_id="order00001",
            token="tok_visa",
            amount_cents=100,
            currency_code="USD",
        )
    per_call = len(one_call)

    every: list[str] = []
    stock: dict[str, int] = {}

    def statements(n: int) -> list[str]:
        ids, codes = _renewals(sessions, clock, n, items=True)
        with counting_statements() as sent:
            ran = execute(sessions, ids, gateways=gateways, config=config, clock=clock)
        assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
        for copy_id in ids:
            assert _lines(sessions, copy_id) == [(codes[1], 3, 250)]
        every.extend(ids)
        stock.update(dict.fromkeys(codes, STOCK))
        return sent

    one, two, ten = statements(1), statements(2), statements(10)

    with sessions.begin() as s:
        assert violations(s, every, stock) == []

    assert sum("order_subscription_items" in statement for statement in ten) == 1
    assert len(two) - len(one) == per_call, "\n".join(two)
    assert len(ten) - len(two) == 8 * per_call, "\n".join(ten)


def test_renewals_of_one_source_order_each_build_from_their_own_subscription(
    sessions, gateways, config
):
    """Two subscriptions of the same order in one chunk: the one with items renews them,
    the one without renews the whole order."""
    clock = FixedClock()
    with sessions.begin() as s:
        tee, cap = make_sku(s, stock=STOCK), make_sku(s, stock=STOCK)
        customer = make_customer(s)
        entry = make_wallet_entry(s, customer)
        source = make_order(s, [Line(tee, 2), Line(cap, 1)], customer=customer, wallet_entry=entry)
        automatic = make_subscription(s, source, starts_at=clock.now - timedelta(days=1))
        manual = make_subscription(s, source, starts_at=clock.now - timedelta(days=1))
        s.add(_item(automatic.id, cap, 4, 10))
        s.add(_item(automatic.id, tee, 1, 0, nth=1))
        pairs = [(automatic.id, source.id), (manual.id, source.id)]
    ids = [
        create_copy(sessions, source_id, now=clock.now, order_subscription_id=sub, **PLACING).id
        for sub, source_id in pairs
    ]

    ran = execute(sessions, ids, gateways=gateways, config=config, clock=clock)

    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
    assert _lines(sessions, ids[0]) == [(cap.code, 4, 10), (tee.code, 1, 0)]
    assert _lines(sessions, ids[1]) == [
        (tee.code, 2, tee.unit_amount_cents),
        (cap.code, 1, cap.unit_amount_cents),
    ]
    with sessions.begin() as s:
        assert violations(s, ids, {tee.code: STOCK, cap.code: STOCK}) == []
