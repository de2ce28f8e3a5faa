"""``_place`` racing itself, line item edits, payment source and customer changes, ``_cancel``.

Whatever wins, afterwards: no 5xx, each request answered as its outcome
allows (a place that loses answers 409 or 422), and every money promise holds
(tests/money.py): a placed order holds exactly its total, on the source it
pays with, in one live authorization; nothing else holds anything; stock is
what the placed orders took; a placed order's wallet entry is its customer's.
"""

from __future__ import annotations

import pytest

from models import OrderStatus
from tests.factories import make_customer, make_wallet_entry
from tests.races.client import (
    add_line,
    cancel,
    change_customer,
    delete,
    place,
    use_wallet_entry,
)
from tests.races.conftest import expect
from tests.races.shop import LOST, REFUSED, order_status, pending_order

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.xdist_group("races")]


def at_most_one_place(replies):
    placed = [reply for reply in replies if reply.call.what == "_place" and reply.status == 200]
    return [f"{len(placed)} places answered 200, at most 1 may"] if len(placed) > 1 else []


def test_parallel_places_of_one_order_place_it_once_with_one_hold(arena, round_):
    clicks = 8
    shop = pending_order(arena.sessions, round_.rng)
    order = shop.order
    replies = arena.race([place(order.id)] * clicks, round_)
    problems = arena.server_errors(replies) + expect(replies, {"_place": {200, *LOST}})
    placed = sum(reply.status == 200 for reply in replies)
    if placed != 1:
        problems.append(f"{placed} of {clicks} parallel places answered 200, expected exactly 1")
    status = order_status(arena.sessions, order.id)
    if status != OrderStatus.PLACED:
        problems.append(f"order {order.id} is {status}, expected placed")
    problems += arena.settle_and_check(shop.initial_stock)
    assert not problems, round_.report(problems, replies)


def test_place_racing_line_items_added_and_deleted_holds_the_final_total(arena, round_):
    rng = round_.rng
    shop = pending_order(arena.sessions, rng, lines=2)
    order, skus, line_ids = shop.order, shop.skus, shop.line_ids
    calls = [place(order.id) for _ in range(rng.randint(1, 2))]
    calls += [add_line(order.id, rng.choice(skus).code, rng.randint(1, 20)) for _ in range(2)]
    if rng.random() < 0.7:
        calls.append(delete("line_items", rng.choice(line_ids)))
    rng.shuffle(calls)
    replies = arena.race(calls, round_)
    problems = arena.server_errors(replies) + at_most_one_place(replies)
    problems += expect(
        replies,
        {"_place": {200, *LOST}, "POST line_items": {201, *REFUSED}, "DELETE": {204, *REFUSED}},
    )
    placed = any(r.call.what == "_place" and r.status == 200 for r in replies)
    status = order_status(arena.sessions, order.id)
    if placed != (status == OrderStatus.PLACED):
        problems.append(f"order {order.id} is {status}, yet a place answered {placed and 200}")
    problems += arena.settle_and_check(shop.initial_stock)
    assert not problems, round_.report(problems, replies)


def test_place_racing_a_payment_source_switch_and_a_customer_change(arena, round_):
    rng = round_.rng
    shop = pending_order(arena.sessions, rng)
    order, customer = shop.order, shop.customer
    with arena.sessions.begin() as s:
        other_entry = make_wallet_entry(
            s, customer, token=rng.choice(["tok_visa", "tok_visa", "tok_declined"])
        )
        stranger = make_customer(s)
        make_wallet_entry(s, stranger)
    calls = [place(order.id) for _ in range(rng.randint(1, 2))]
    calls += [use_wallet_entry(order.id, other_entry.id), change_customer(order.id, stranger.id)]
    rng.shuffle(calls)
    replies = arena.race(calls, round_)
    problems = arena.server_errors(replies) + at_most_one_place(replies)
    problems += expect(
        replies,
        {
            "_place": {200, *LOST},
            # 422: the order is the stranger's by then, and the entry is not theirs.
            "_customer_payment_source_id": {200, 422, *REFUSED},
            "customer": {200, *REFUSED},
        },
    )
    problems += arena.settle_and_check(shop.initial_stock)
    assert not problems, round_.report(problems, replies)


def test_an_order_given_to_another_customer_is_not_placed_on_the_first_ones_card(arena, round_):
    # Issue 13, item 4: attach A's card, change the customer to B, then place.
    shop = pending_order(arena.sessions, round_.rng)
    order = shop.order
    with arena.sessions.begin() as s:
        stranger = make_customer(s)
    changed = arena.send(change_customer(order.id, stranger.id))
    replies = arena.race([place(order.id) for _ in range(round_.rng.randint(1, 3))], round_)
    problems = arena.server_errors([changed, *replies]) + expect(
        [changed, *replies], {"customer": {200}, "_place": {422}}
    )
    status = order_status(arena.sessions, order.id)
    if status != OrderStatus.PENDING:
        problems.append(f"order {order.id} is {status}, expected still pending")
    problems += arena.settle_and_check(shop.initial_stock)
    assert not problems, round_.report(problems, [changed, *replies])


def test_place_racing_cancel(arena, round_):
    rng = round_.rng
    shop = pending_order(arena.sessions, rng)
    order = shop.order
    already_placed = round_.number % 2 == 1
    before = []
    if already_placed:
        before.append(arena.send(place(order.id)))
    calls = [cancel(order.id) for _ in range(rng.randint(1, 2))]
    calls += [place(order.id) for _ in range(rng.randint(1, 2))]
    rng.shuffle(calls)
    replies = arena.race(calls, round_)
    # _cancel of an order not (yet) placed: 422; of one a request is changing: 409.
    problems = arena.server_errors([*before, *replies]) + at_most_one_place(replies)
    problems += expect(before, {"_place": {200}})
    problems += expect(replies, {"_place": {200, *LOST}, "_cancel": {200, *LOST}})
    cancelled = sum(r.call.what == "_cancel" and r.status == 200 for r in replies)
    status = order_status(arena.sessions, order.id)
    if cancelled > 1:
        problems.append(f"{cancelled} cancels answered 200, at most 1 may")
    if already_placed and (cancelled, status) != (1, OrderStatus.CANCELLED):
        problems.append(
            f"order {order.id} was placed before the race and is {status} after it,"
            f" with {cancelled} cancels answered 200: expected cancelled, by exactly one"
        )
    if (status == OrderStatus.CANCELLED) != bool(cancelled):
        problems.append(f"order {order.id} is {status}, and {cancelled} cancels answered 200")
    problems += arena.settle_and_check(shop.initial_stock)
    assert not problems, round_.report(problems, [*before, *replies])
