"""Bundle lines competing for the last units of a shared SKU over HTTP.

Orders of a bundle (2 of a shared SKU and 1 of another) and orders of the shared SKU
alone are placed in parallel, with more demand than the shared SKU's stock, while placed
bundle orders are cancelled and the bundle's SKU list is changed. Afterwards: no 5xx, no
order refused for stock while enough was surely there, and stock is conserved
(tests/money.py): each SKU's stock plus what placed orders' SKU lines and bundle lines
recorded taking is its initial stock; no cancelled order's bundle line records any.
"""

from __future__ import annotations

import pytest

from models import OrderStatus
from tests.copying.orders.test_bundle_stock import bundle_order, make_bundle
from tests.factories import Line, make_sku
from tests.races.client import Reply, cancel, patch, place
from tests.races.conftest import expect
from tests.races.shop import LOST, order_status

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.xdist_group("races")]


def test_parallel_places_of_bundle_orders_never_oversell_a_shared_sku(arena, round_):
    rng = round_.rng
    shared_stock = rng.randint(5, 9)
    with arena.sessions.begin() as s:
        shared, other = make_sku(s, stock=shared_stock), make_sku(s, stock=50)
        bundle = make_bundle(s, f"DUO-{round_.number}", {shared: 2, other: 1})
        placed = [bundle_order(s, [(bundle.code, 1)]) for _ in range(2)]
        # What each pending order wants of the shared SKU (its bundle's list unchanged).
        wants = {bundle_order(s, [(bundle.code, 1)]).id: 2 for _ in range(rng.randint(3, 5))}
        for _ in range(2):
            quantity = rng.randint(1, 3)
            wants[bundle_order(s, [], Line(shared, quantity)).id] = quantity
    initial = {shared.code: shared_stock, other.code: 50}
    for order in placed:  # 4 of the shared SKU taken before the race
        assert arena.send(place(order.id)).status == 200
    calls = [place(order_id) for order_id in wants] + [cancel(o.id) for o in placed]
    changing = rng.random() < 0.5  # the placed lines give back what they took, not the new list
    if changing:
        items = [{"sku_code": other.code, "quantity": 3}, {"sku_code": shared.code, "quantity": 1}]
        calls.append(patch("bundles", bundle.id, {"sku_list_items": items}, "PATCH bundle"))
    rng.shuffle(calls)

    replies = arena.race(calls, round_)

    problems = arena.server_errors(replies)
    problems += expect(replies, {"_place": {200, *LOST}, "_cancel": {200}, "PATCH": {200}})
    # Only the places that succeeded took stock during the race (cancels only give back),
    # so at every moment at least this much of the shared SKU was there: a place refused
    # for stock that wanted no more than that was refused while its units were free.
    taken = sum(wants[_order_id(r)] for r in replies if r.call.what == "_place" and r.status == 200)
    surely_there = shared_stock - 4 - taken
    for reply in replies:
        if reply.call.what != "_place" or reply.status == 200:
            continue
        if "out of stock" not in reply.detail:
            problems.append(f"{reply} was refused, not for stock")
        want = wants[_order_id(reply)]
        if not changing and want <= surely_there:
            problems.append(f"{reply}: it wanted {want}, and {surely_there} were there throughout")
    for order_id in wants:
        status = order_status(arena.sessions, order_id)
        answered = [r.status for r in replies if r.call.path.endswith(order_id)]
        if (status == OrderStatus.PLACED) != (answered == [200]):
            problems.append(f"order {order_id} is {status}, its place answered {answered}")
    for order in placed:
        if order_status(arena.sessions, order.id) != OrderStatus.CANCELLED:
            problems.append(f"order {order.id} was cancelled and is not")
    problems += arena.settle_and_check(initial)
    assert not problems, round_.report(problems, replies)


def _order_id(reply: Reply) -> str:
    return reply.call.path.rsplit("/", 1)[-1]
