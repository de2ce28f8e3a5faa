"""A wallet entry disabled, expired or deleted between attaching it and ``_place``.

Placing checks the entry again (same customer, same mode, enabled, not
expired), so a place after the entry was disabled or expired fails (422);
deleting an entry that an order not yet placed still names is refused (409).
An entry deleted once its order was placed is history, not a payment source.
Each round is one of five shapes (``round % 5``): disable, expire or delete
first and then place at once, or disable or delete at the same time as the
places. Afterwards: no 5xx, and every money promise holds.
"""

from __future__ import annotations

import pytest

from models import OrderStatus
from tests.races.client import delete, patch, place
from tests.races.conftest import expect
from tests.races.shop import LOST, order_status, pending_order

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.xdist_group("races")]

ENTRIES = "customer_payment_sources"


def disable(entry_id):
    return patch(ENTRIES, entry_id, {"disabled": True}, what="disable the wallet entry")


def expire(entry_id):
    return patch(ENTRIES, entry_id, {"expires_on": "2020-01-31"}, what="expire the wallet entry")


def test_a_wallet_entry_disabled_expired_or_deleted_before_or_while_placing(arena, round_):
    rng = round_.rng
    shop = pending_order(arena.sessions, rng)
    order, entry = shop.order, shop.entry
    places = [place(order.id) for _ in range(rng.randint(1, 3))]
    shape = round_.number % 5
    problems: list[str] = []
    if shape < 3:  # first the entry changes, then the places race each other
        what = ["disabled", "expired", "deleted"][shape]
        change = [disable, expire, lambda i: delete(ENTRIES, i)][shape](entry.id)
        before = [arena.send(change)]
        replies = arena.race(places, round_)
        # Deleting an entry a pending order names is refused: the places then go on.
        problems += expect(before, {"disable": {200}, "expire": {200}, "DELETE": {409}})
        allowed = {200, *LOST} if what == "deleted" else {422}
        problems += expect(replies, {"_place": allowed})
        status = order_status(arena.sessions, order.id)
        if what != "deleted" and status != OrderStatus.PENDING:
            problems.append(f"order {order.id} is {status} on a wallet entry {what} before")
    else:  # the entry changes while the places race
        change = disable(entry.id) if shape == 3 else delete(ENTRIES, entry.id)
        before = []
        replies = arena.race([change, *places], round_)
        problems += expect(
            replies, {"_place": {200, *LOST}, "disable": {200}, "DELETE": {204, 409}}
        )
        deleted = any(r.call.what.startswith("DELETE") and r.status == 204 for r in replies)
        status = order_status(arena.sessions, order.id)
        if deleted and status != OrderStatus.PLACED:
            problems.append(
                f"wallet entry {entry.id} was deleted while order {order.id}, {status},"
                " still named it"
            )
    placed = sum(r.call.what == "_place" and r.status == 200 for r in replies)
    if placed > 1:
        problems.append(f"{placed} places answered 200, at most 1 may")
    problems = arena.server_errors([*before, *replies]) + problems
    problems += arena.settle_and_check(shop.initial_stock)
    assert not problems, round_.report(problems, [*before, *replies])
