"""The embedded default: the same engine on SQLite (WAL), where the portable fallbacks run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.copies.options import CopyOptions
from copying.orders import placing, stock, targets
from copying.runs import Outcome
from copying.subscriptions import renewals, subscription_items
from copying.webhooks import topics
from models import (
    Adjustment,
    Bundle,
    CopyStatus,
    Coupon,
    Mode,
    Order,
    OrderCopy,
    OrderSubscription,
    Sku,
    Webhook,
    WebhookEvent,
    utcnow,
)
from tests.factories import (
    Line,
    make_coupon,
    make_customer,
    make_order,
    make_promotion,
    make_sku,
    make_subscription,
    make_wallet_entry,
)
from tests.fixtures import Published
from tests.invariants import violations
from tests.money import violations as money_violations
from tests.runs import execute_one


def test_a_copy_places_and_cancels_on_sqlite(sqlite):
    sessions, gateways = sqlite
    with sessions.begin() as s:
        sku = make_sku(s, "LITE-TEE", stock=10)
        customer = make_customer(s)
        entry = make_wallet_entry(s, customer)
        source = make_order(s, [Line(sku, 2)], customer=customer, wallet_entry=entry)
    assert placing.place_order(sessions, source.id, Mode.TEST, gateways=gateways) == []
    published = Published()
    with unit_of_work(sessions, published) as s:
        copy_id = lifecycle.create(
            s,
            mode=Mode.TEST,
            source_order_id=source.id,
            options=CopyOptions(place_target_order=True, cancel_source_order=True),
        ).id
    assert published == [copy_id]
    assert execute_one(sessions, copy_id, gateways=gateways) == Outcome.COMPLETED
    with sessions.begin() as s:
        copy = s.get_one(OrderCopy, copy_id)
        assert copy.status == CopyStatus.COMPLETED
        assert copy.started_at is not None
        assert copy.started_at.tzinfo is not None
        target = s.get_one(Order, copy.target_order_id)
        assert target.status == "placed"
        assert s.get_one(Order, source.id).status == "cancelled"
        assert target.number == s.get_one(Order, source.id).number + 1
        assert violations(s, [copy_id], {"LITE-TEE": 10}) == []


def test_a_copy_applying_promotions_takes_a_coupon_use_on_sqlite(sqlite):
    """The coupon's use taken with the stock and given back with it (UPDATE … RETURNING on
    lower(code)), and its code unique whatever the case (the index on lower(code))."""
    sessions, gateways = sqlite
    now = utcnow()
    with sessions.begin() as s:
        sku = make_sku(s, "LITE-TEE", stock=10)
        customer = make_customer(s)
        entry = make_wallet_entry(s, customer)
        coupon = make_coupon(s, make_promotion(s, name="Lite"), "Lite-5", usage_limit=2)
        source = make_order(
            s,
            [Line(sku, 2)],
            customer=customer,
            wallet_entry=entry,
            coupon_code="LITE-5",
            promotions_at=now,
        )
    assert placing.place_order(sessions, source.id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:
        copy_id = lifecycle.create(
            s,
            mode=Mode.TEST,
            source_order_id=source.id,
            options=CopyOptions(
                place_target_order=True, cancel_source_order=True, apply_promotions=True
            ),
        ).id
    assert execute_one(sessions, copy_id, gateways=gateways) == Outcome.COMPLETED
    with sessions.begin() as s:
        target = s.get_one(Order, s.get_one(OrderCopy, copy_id).target_order_id)
        assert (target.status, target.total_amount_cents) == ("placed", 1800)
        # The target took a use, the cancelled source gave its own back.
        assert s.get_one(Coupon, coupon.id).usage_count == 1
        assert money_violations(s, {"LITE-TEE": 10}) == []
    with pytest.raises(IntegrityError), sessions.begin() as s:
        make_coupon(s, make_promotion(s), "lite-5")


def test_stock_reservation_is_all_or_nothing_on_sqlite(sqlite):
    sessions, _ = sqlite
    with sessions.begin() as s:
        plenty = make_sku(s, "PLENTY", stock=10)
        scarce = make_sku(s, "SCARCE", stock=1)
        order = make_order(s, [Line(plenty, 3), Line(scarce, 2)])
    with sessions.begin() as s:
        wanted = targets.demand(targets.load_contents(s, order.id).lines)
        assert stock.reserve(s, order.id, Mode.TEST, wanted) == [
            "SKU SCARCE is out of stock (2 requested, 1 left)"
        ]
    with sessions.begin() as s:
        left = dict(s.execute(select(Sku.code, Sku.stock_quantity)).all())
    assert left == {"PLENTY": 10, "SCARCE": 1}


def test_orders_added_in_one_flush_get_consecutive_numbers_on_sqlite(sqlite):
    sessions, _ = sqlite
    with sessions.begin() as s:
        orders_ = [Order(mode=Mode.TEST, currency_code="USD", metadata_={}) for _ in range(3)]
        s.add_all(orders_)
        s.flush()
        numbers = [order.number for order in orders_]
    assert numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2]


def test_a_renewal_runs_and_counts_on_its_subscription_on_sqlite(sqlite):
    """The tick's portable writes, and the renewal's outcome written back with its
    ``last_run_succeeded`` event (an UPDATE … RETURNING on SQLite)."""
    sessions, gateways = sqlite
    now = utcnow()
    with sessions.begin() as s:
        sku = make_sku(s, "LITE-RENEW", stock=10)
        customer = make_customer(s)
        entry = make_wallet_entry(s, customer)
        source = make_order(s, [Line(sku, 1)], customer=customer, wallet_entry=entry)
    assert placing.place_order(sessions, source.id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:
        subscription_id = make_subscription(
            s, s.get_one(Order, source.id), starts_at=now - timedelta(days=1)
        ).id
        s.add(
            Webhook(
                mode=Mode.TEST,
                topic=topics.LAST_RUN_SUCCEEDED,
                callback_url="http://127.0.0.1:9/hooks",
                shared_secret="secret",
            )
        )
    with sessions.begin() as s:
        [copy_id] = renewals.tick(s, now, batch_size=10).copies

    assert execute_one(sessions, copy_id, gateways=gateways) == Outcome.COMPLETED
    with sessions.begin() as s:
        subscription = s.get_one(OrderSubscription, subscription_id)
        assert (subscription.status, subscription.occurrencies) == ("active", 1)
        assert subscription.succeeded_on_last_run is True
        events = s.execute(select(WebhookEvent.topic, WebhookEvent.resource_id)).all()
    assert events == [(topics.LAST_RUN_SUCCEEDED, subscription_id)]


def test_a_renewal_of_sku_bundle_and_adjustment_items_on_sqlite(sqlite):
    """The items' one query (outer joins to skus, bundles and adjustments) and the bundle
    line's ``bundle_code`` written by the portable insert."""
    sessions, gateways = sqlite
    now = utcnow()
    with sessions.begin() as s:
        sku = make_sku(s, "LITE-ITEM", stock=10)
        s.add(
            Bundle(
                code="LITE-KIT",
                name="Lite kit",
                currency_code=sku.currency_code,
                price_amount_cents=2000,
                sku_list_items=[{"sku_code": sku.code, "quantity": 2}],
            )
        )
        fee = Adjustment(name="Fee", currency_code=sku.currency_code, amount_cents=-150)
        s.add(fee)
        customer = make_customer(s)
        entry = make_wallet_entry(s, customer)
        source = make_order(s, [Line(sku, 1)], customer=customer, wallet_entry=entry)
    assert placing.place_order(sessions, source.id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:
        subscription = make_subscription(
            s, s.get_one(Order, source.id), starts_at=now - timedelta(days=1)
        )
        s.flush()
        subscription_items.add(s, subscription, sku_code=sku.code, quantity=2)
        subscription_items.add(s, subscription, bundle_code="LITE-KIT")
        subscription_items.add(s, subscription, adjustment=s.get_one(Adjustment, fee.id))
    with sessions.begin() as s:
        [copy_id] = renewals.tick(s, now, batch_size=10).copies

    assert execute_one(sessions, copy_id, gateways=gateways) == Outcome.COMPLETED
    with sessions.begin() as s:
        target = s.get_one(Order, s.get_one(OrderCopy, copy_id).target_order_id)
        lines = [
            (line.item_type, line.sku_code, line.bundle_code, line.name, line.quantity)
            for line in targets.load_lines(s, target.id)
        ]
        assert lines == [
            ("skus", "LITE-ITEM", None, sku.name, 2),
            ("bundles", None, "LITE-KIT", "Lite kit", 1),
            ("adjustments", None, None, "Fee", 1),
        ]
        assert (target.subtotal_amount_cents, target.adjustment_amount_cents) == (
            2 * sku.unit_amount_cents + 2000,
            -150,
        )
        assert violations(s, [copy_id], {"LITE-ITEM": 10}) == []
