"""A coupon's last uses raced for: by parallel ``_place`` s of orders carrying it, by copies
placing their targets in the worker, and by its own order's coupon changing while it is
placed.

Whatever wins, afterwards: no 5xx, each request answered as its outcome allows, the coupon
never used more than its ``usage_limit``, its ``usage_count`` exactly the placed orders
holding one of its uses, and every money promise (tests/money.py: a placed order holds
exactly its total, discount included, in one live authorization; stock as placed).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import CopyStatus, Coupon, ItemType, LineItem, Order, OrderCopy, OrderStatus, utcnow
from tests.factories import (
    Line,
    make_coupon,
    make_customer,
    make_order,
    make_promotion,
    make_sku,
    make_wallet_entry,
)
from tests.races.client import Call, patch_order, place
from tests.races.conftest import expect
from tests.races.shop import LOST, REFUSED, STOCK
from tests.races.test_copies import create_copy_call

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.xdist_group("races")]


def coupon_orders(sessions, rng, count: int, *, usage_limit: int) -> tuple[str, list[str], str]:
    """``count`` pending orders, each its own customer's, paid from their wallet, carrying
    the coupon SPRING (25% off, ``usage_limit`` uses); the coupon's id, the orders' ids and
    the SKU's code."""
    now = utcnow()
    with sessions.begin() as s:
        sku = make_sku(s, price=rng.choice([1200, 1500, 4999]), stock=STOCK)
        coupon = make_coupon(
            s, make_promotion(s, name="Spring", percentage=25), "SPRING", usage_limit=usage_limit
        )
        orders = []
        for _ in range(count):
            customer = make_customer(s)
            order = make_order(
                s,
                [Line(sku, rng.randint(1, 3))],
                customer=customer,
                wallet_entry=make_wallet_entry(s, customer),
                coupon_code=rng.choice(["SPRING", "spring", "Spring"]),
                promotions_at=now,
            )
            orders.append(order.id)
    return coupon.id, orders, sku.code


def coupon_holders(sessions, coupon_id: str) -> tuple[int, list[str]]:
    """The coupon's usage_count, and the placed orders whose SPRING line holds a use."""
    with sessions.begin() as s:
        count = s.get_one(Coupon, coupon_id).usage_count
        holders = s.scalars(
            select(Order.id)
            .join(LineItem, LineItem.order_id == Order.id)
            .where(
                Order.status == OrderStatus.PLACED,
                LineItem.item_type == ItemType.PROMOTIONS,
                LineItem.coupon_code == "SPRING",
                LineItem.reserved_quantity == 1,
            )
        ).all()
    return count, list(holders)


def test_parallel_places_of_orders_sharing_a_coupons_last_use_give_it_to_one(arena, round_):
    orders_count = 6
    coupon_id, orders, code = coupon_orders(arena.sessions, round_.rng, orders_count, usage_limit=1)

    replies = arena.race([place(order_id) for order_id in orders], round_)

    # A place that lost the coupon's last use answers 422 (its hold voided); one refreshed
    # after the winner took it is placed at its full price.
    problems = arena.server_errors(replies) + expect(replies, {"_place": {200, 422}})
    lost = [r for r in replies if r.status == 422]
    problems += [f"{r}: expected the coupon used up" for r in lost if "used up" not in r.detail]
    count, holders = coupon_holders(arena.sessions, coupon_id)
    if (count, len(holders)) != (1, 1):
        problems.append(f"coupon SPRING counts {count} uses, {len(holders)} orders hold one")
    placed = sum(r.status == 200 for r in replies)
    if placed + len(lost) != orders_count or placed < 1:
        problems.append(f"{placed} placed and {len(lost)} refused of {orders_count}")
    problems += arena.settle_and_check({code: STOCK})
    assert not problems, round_.report(problems, replies)


def test_copies_placing_targets_with_a_coupons_last_uses_in_the_worker(arena, round_):
    copies_count = 4
    coupon_id, sources, code = coupon_orders(
        arena.sessions, round_.rng, copies_count, usage_limit=2
    )

    calls = [create_copy_call(source_id, place_target_order=True) for source_id in sources]
    replies = arena.race(calls, round_)

    problems = arena.server_errors(replies) + expect(replies, {"POST order_copies": {201}})
    problems += arena.settle_and_check({code: STOCK})
    with arena.sessions.begin() as s:
        copies = [s.get_one(OrderCopy, r.body["data"]["id"]) for r in replies if r.status == 201]
    completed = [c for c in copies if c.status == CopyStatus.COMPLETED]
    for copy in copies:
        if copy.status == CopyStatus.FAILED and "coupon SPRING" not in str(copy.errors_log):
            problems.append(f"copy {copy.id} failed, not for its coupon: {copy.errors_log}")
    count, holders = coupon_holders(arena.sessions, coupon_id)
    if (count, len(holders), len(completed)) != (2, 2, 2):
        problems.append(
            f"coupon SPRING counts {count} uses, {len(holders)} targets hold one,"
            f" {len(completed)} copies completed: expected 2 of each"
        )
    assert not problems, round_.report(problems, replies)


def set_coupon(order_id: str, code: str | None) -> Call:
    return patch_order(order_id, f"coupon_code {code}", {"coupon_code": code})


def test_place_racing_changes_of_the_orders_coupon_holds_the_final_total(arena, round_):
    rng = round_.rng
    coupon_id, [order_id], code = coupon_orders(arena.sessions, rng, 1, usage_limit=1)
    with arena.sessions.begin() as s:
        make_coupon(s, make_promotion(s, name="Autumn", percentage=40), "AUTUMN")
    calls = [place(order_id) for _ in range(rng.randint(1, 2))]
    calls += [set_coupon(order_id, rng.choice(["AUTUMN", None, "spring"])) for _ in range(2)]
    rng.shuffle(calls)

    replies = arena.race(calls, round_)

    problems = arena.server_errors(replies) + expect(
        replies, {"_place": {200, *LOST}, "coupon_code": {200, *REFUSED}}
    )
    placed = [r for r in replies if r.call.what == "_place" and r.status == 200]
    if len(placed) > 1:
        problems.append(f"{len(placed)} places answered 200, at most 1 may")
    count, holders = coupon_holders(arena.sessions, coupon_id)
    if count != len(holders) or count > 1:
        problems.append(f"coupon SPRING counts {count} uses, {len(holders)} orders hold one")
    problems += arena.settle_and_check({code: STOCK})
    assert not problems, round_.report(problems, replies)
