"""Copies and promotions: frozen by default (promotion lines and the coupon as they were),
``apply_promotions`` (made again as of the copy), ``ignore_invalid_coupon``, and the coupon
use a placed target takes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from copying import runs
from copying.orders import placing
from copying.runs import Outcome
from copying.subscriptions import renewals
from models import (
    CopyStatus,
    Coupon,
    FixedAmountPromotion,
    ItemType,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    Sku,
)
from tests.copying.clock import T0
from tests.factories import (
    Line,
    create_copy,
    make_coupon,
    make_customer,
    make_order,
    make_promotion,
    make_sku,
    make_subscription,
    make_wallet_entry,
    order_lines,
)
from tests.invariants import violations as copy_violations
from tests.money import violations as money_violations
from tests.runs import execute_one

DAY = timedelta(days=1)
#: Promotions and coupons made before the copy; the copy runs a week later, at T0.
BEFORE = T0 - 7 * DAY


@pytest.fixture
def sessions(committed):
    """Committed sessions: the money checks read the whole database, the test gateway's
    ledger too (which the gateway commits on its own)."""
    return committed


def source_with_coupon(s, *, usage_limit=None, coupon_expires=None, price=2000, stock=10):
    """A source of 2 TEE (priced ``price``) with a 10% sale for everyone, ended by the time
    of the copy, and the coupon SPRING (5.00 off), its promotion still on."""
    tee = make_sku(s, "TEE", price=price, stock=stock)
    customer = make_customer(s)
    entry = make_wallet_entry(s, customer)
    make_promotion(s, name="Week sale", percentage=10, window=(BEFORE, T0 - DAY))
    spring = make_promotion(
        s, FixedAmountPromotion, name="Spring", fixed_amount_cents=500, currency="USD"
    )
    coupon = make_coupon(s, spring, "SPRING", usage_limit=usage_limit, expires_at=coupon_expires)
    source = make_order(
        s,
        [Line(tee, 2)],
        customer=customer,
        wallet_entry=entry,
        coupon_code="spring",
        promotions_at=BEFORE,
    )
    return tee, coupon, source


def lines_of(s, order_id):
    return [
        (line.item_type, line.name, line.unit_amount_cents, line.coupon_code)
        for line in order_lines(s, order_id)
    ]


def copy_and_target(sessions, copy_id):
    with sessions.begin() as s:
        copy = s.get_one(OrderCopy, copy_id)
        target = s.get_one(Order, copy.target_order_id) if copy.target_order_id else None
        return copy, target, (lines_of(s, target.id) if target else [])


SOURCE_LINES = [
    (ItemType.SKUS, "Item TEE", 2000, None),
    (ItemType.PROMOTIONS, "Week sale", -400, None),
    (ItemType.PROMOTIONS, "Spring", -500, "SPRING"),
]


def test_a_copy_is_frozen_its_promotion_lines_and_coupon_as_they_were(sessions, gateways, clock):
    with sessions.begin() as s:
        tee, coupon, source = source_with_coupon(s)
        assert lines_of(s, source.id) == SOURCE_LINES
        tee.unit_amount_cents = 2600  # repriced since: the copy keeps the price it sold at

    copy = create_copy(sessions, source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    copy, target, lines = copy_and_target(sessions, copy.id)
    assert lines == SOURCE_LINES  # the week sale ended: frozen, it stays
    assert (target.coupon_code, target.frozen, target.status) == ("spring", True, "placed")
    assert (target.discount_amount_cents, target.total_amount_cents) == (-900, 3100)
    with sessions.begin() as s:
        assert s.get_one(Coupon, coupon.id).usage_count == 1  # the target's
        assert money_violations(s, {"TEE": 10}) == []


def test_apply_promotions_makes_them_again_as_of_the_copy_at_the_prices_copied(
    sessions, gateways, clock
):
    with sessions.begin() as s:
        tee, _, source = source_with_coupon(s)
        tee.unit_amount_cents = 2600
        make_promotion(s, name="Today", percentage=20, window=(T0, T0 + DAY))

    copy = create_copy(sessions, source.id, apply_promotions=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    copy, target, lines = copy_and_target(sessions, copy.id)
    assert (copy.apply_promotions, copy.errors_log) == (True, {})
    assert lines == [
        (ItemType.SKUS, "Item TEE", 2000, None),  # unit price as copied
        (ItemType.PROMOTIONS, "Today", -800, None),
        (ItemType.PROMOTIONS, "Spring", -500, "SPRING"),  # the coupon still valid
    ]
    assert (target.coupon_code, target.total_amount_cents) == ("spring", 2700)


def test_an_invalid_coupon_is_an_error_and_is_not_copied(sessions, gateways, clock):
    with sessions.begin() as s:
        _, _, source = source_with_coupon(s, coupon_expires=T0 - DAY)

    copy = create_copy(sessions, source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    copy, target, lines = copy_and_target(sessions, copy.id)
    assert copy.status == CopyStatus.FAILED
    assert copy.errors_log == {"coupon_code": ["coupon SPRING expired on 2026-11-19 09:00 UTC"]}
    assert copy.errors_count == 1
    assert (target.coupon_code, target.status) == (None, OrderStatus.PENDING)
    assert lines == SOURCE_LINES[:2]  # the coupon's discount went with it


def test_ignore_invalid_coupon_copies_without_it_and_without_an_error(sessions, gateways, clock):
    with sessions.begin() as s:
        _, coupon, source = source_with_coupon(s, usage_limit=1)
    # The source was placed with the coupon's only use: the copy cannot have it.
    assert placing.place_order(sessions, source.id, Mode.TEST, gateways=gateways) == []

    copy = create_copy(sessions, source.id, place_target_order=True, ignore_invalid_coupon=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    copy, target, lines = copy_and_target(sessions, copy.id)
    assert (copy.errors_log, copy.errors_count, copy.ignore_invalid_coupon) == ({}, 0, True)
    assert (target.coupon_code, target.status, target.total_amount_cents) == (None, "placed", 3600)
    assert lines == SOURCE_LINES[:2]
    with sessions.begin() as s:
        assert s.get_one(Coupon, coupon.id).usage_count == 1  # the source's, still
        assert money_violations(s, {"TEE": 10}) == []
        assert copy_violations(s, [copy.id], {"TEE": 10}) == []


def test_a_coupon_used_up_without_the_flag_fails_the_copy_naming_it(sessions, gateways, clock):
    with sessions.begin() as s:
        _, _, source = source_with_coupon(s, usage_limit=1)
    assert placing.place_order(sessions, source.id, Mode.TEST, gateways=gateways) == []

    copy = create_copy(sessions, source.id, place_target_order=True, apply_promotions=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    copy, target, _ = copy_and_target(sessions, copy.id)
    assert copy.errors_log == {"coupon_code": ["coupon SPRING has been used up (1 uses of 1)"]}
    assert target.status == OrderStatus.PENDING


def test_two_copies_of_a_chunk_wanting_a_coupons_last_use_place_one(sessions, gateways, clock):
    """The first built takes the last use as its stock is reserved; the second, built after
    it in the same transaction, finds the coupon used up. (Copies in separate processes
    racing for it: tests/races/test_coupons.py.)"""
    with sessions.begin() as s:
        _, coupon, first = source_with_coupon(s, usage_limit=1)
        customer = make_customer(s)
        second = make_order(
            s,
            [Line(s.scalars(select(Sku).where(Sku.code == "TEE")).one(), 1)],
            customer=customer,
            wallet_entry=make_wallet_entry(s, customer),
            coupon_code="SPRING",
            promotions_at=BEFORE,
        )

    copies = [
        create_copy(sessions, order.id, place_target_order=True).id for order in (first, second)
    ]
    ran = runs.execute(sessions, copies, gateways=gateways, clock=clock)

    assert sorted(ran.counts().items()) == [("completed", 1), ("failed", 1)]
    with sessions.begin() as s:
        failed = [s.get_one(OrderCopy, i) for i in copies]
        assert [c.errors_log for c in failed if c.status == CopyStatus.FAILED] == [
            {"coupon_code": ["coupon SPRING has been used up (1 uses of 1)"]}
        ]
        assert s.get_one(Coupon, coupon.id).usage_count == 1
        assert money_violations(s, {"TEE": 10}) == []


def test_a_renewal_keeps_its_subscriptions_discount_and_takes_no_coupon_use(
    sessions, gateways, clock
):
    """A coupon with one use, taken by the source when it was placed: each renewal is a
    frozen copy, discount lines included, which neither checks the coupon nor takes a use
    (without this, every renewal failed on the used-up coupon)."""
    with sessions.begin() as s:
        tee, coupon, source = source_with_coupon(s, usage_limit=1)
    assert placing.place_order(sessions, source.id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:
        # Repriced since: the subscriber keeps the price.
        s.get_one(Sku, tee.id).unit_amount_cents = 2600
        make_subscription(s, s.get_one(Order, source.id), starts_at=T0 - 2 * DAY)
    with sessions.begin() as s:
        [copy_id] = renewals.tick(s, T0, batch_size=10).copies

    assert execute_one(sessions, copy_id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    copy, target, lines = copy_and_target(sessions, copy_id)
    assert (copy.errors_log, target.status, target.coupon_code) == ({}, "placed", None)
    # The discount kept, without the coupon (which would take a use when placed).
    assert lines == [*SOURCE_LINES[:2], (ItemType.PROMOTIONS, "Spring", -500, None)]
    assert target.total_amount_cents == 3100
    with sessions.begin() as s:
        assert s.get_one(Coupon, coupon.id).usage_count == 1  # the source's use, no other
        assert money_violations(s, {"TEE": 10}) == []
