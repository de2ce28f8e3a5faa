"""A copy placing its target takes its bundle lines' SKUs' stock, as it takes its SKU
lines'; cancelling its source gives the source's back; a copy short of a bundle's SKU
fails as one short of a SKU line's does; and its statements do not grow with its lines."""

from __future__ import annotations

from copying import runs
from copying.orders import placing
from models import CopyStatus, Mode, Order, OrderCopy, OrderStatus
from tests.copying.orders.test_bundle_stock import bundle_order, left, make_bundle, recorded
from tests.copying.statements import counting_statements
from tests.factories import Line, create_copy, make_shop, make_sku
from tests.invariants import violations
from tests.runs import execute_one

PLACING = {"place_target_order": True, "reuse_wallet": True}


def _target(s, copy_id: str) -> Order:
    return s.get_one(Order, s.get_one(OrderCopy, copy_id).target_order_id)


def test_a_copy_placing_its_target_takes_its_bundles_skus_and_cancelling_the_source_gives_back(
    sessions, gateways, clock
):
    with sessions.begin() as s:
        tee, mug = make_sku(s, stock=20), make_sku(s, stock=20)
        make_bundle(s, "DUO", {tee: 2, mug: 1})
        source = bundle_order(s, [("DUO", 3)], Line(tee, 1))
    initial = {tee.code: 20, mug.code: 20}
    assert placing.place_order(sessions, source.id, Mode.TEST, gateways=gateways) == []
    copy = create_copy(sessions, source.id, now=clock.now, cancel_source_order=True, **PLACING)

    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == runs.Outcome.COMPLETED

    with sessions.begin() as s:
        target = _target(s, copy.id)
        assert target.status == OrderStatus.PLACED
        assert s.get_one(Order, source.id).status == OrderStatus.CANCELLED
        assert recorded(s, target.id) == {(0, tee.code): 6, (0, mug.code): 3}
        assert recorded(s, source.id) == {}
        assert left(s, tee, mug) == [13, 17]  # the target's 7 and 3; the source's given back
        assert violations(s, [copy.id], initial) == []


def test_of_two_copies_in_a_chunk_the_one_with_bundles_takes_its_skus_on_its_own(
    sessions, gateways, clock
):
    with sessions.begin() as s:
        tee = make_sku(s, stock=10)
        make_bundle(s, "SOLO", {tee: 3})
        bundled = bundle_order(s, [("SOLO", 1)])
        shop = make_shop(s, stock=10)
    ids = [create_copy(sessions, o.id, now=clock.now, **PLACING).id for o in (bundled, shop.source)]

    ran = runs.execute(sessions, ids, gateways=gateways, clock=clock)

    assert ran.outcome == dict.fromkeys(ids, runs.Outcome.COMPLETED)
    with sessions.begin() as s:
        assert left(s, tee, shop.sku) == [7, 8]
        assert violations(s, ids, {tee.code: 10, shop.sku.code: 10}) == []


def test_a_copy_short_of_a_bundles_sku_fails_as_one_short_of_a_sku_line_does(
    sessions, gateways, clock
):
    with sessions.begin() as s:
        tee = make_sku(s, stock=3)
        make_bundle(s, "DUO", {tee: 2})
        bundled = bundle_order(s, [("DUO", 2)])
        plain = bundle_order(s, [], Line(tee, 4))
    ids = [create_copy(sessions, o.id, now=clock.now, **PLACING).id for o in (bundled, plain)]

    outcomes = [execute_one(sessions, i, gateways=gateways, clock=clock) for i in ids]

    assert outcomes == [runs.Outcome.FAILED] * 2
    short = f"SKU {tee.code} is out of stock (4 requested, 3 left)"
    with sessions.begin() as s:
        copies = [s.get_one(OrderCopy, i) for i in ids]
        assert [c.status for c in copies] == [CopyStatus.FAILED] * 2
        # Found when its stock is taken (a SKU line's, when its line is copied).
        assert copies[0].errors_log == {"target_order": [short]}
        assert copies[1].errors_log == {"line_items": [short]}
        assert _target(s, ids[0]).status == OrderStatus.PENDING
        assert recorded(s, _target(s, ids[0]).id) == {}
        assert left(s, tee) == [3]
        assert violations(s, ids, {tee.code: 3}) == []


def _statements_to_copy(sessions, gateways, clock, lines: int) -> list[str]:
    with sessions.begin() as s:
        skus = [make_sku(s, stock=10) for _ in range(lines + 1)]
        for n in range(lines):
            make_bundle(s, f"B{lines}-{n}", {skus[n]: 2, skus[n + 1]: 1})
        source = bundle_order(s, [(f"B{lines}-{n}", 1) for n in range(lines)])
    copy = create_copy(sessions, source.id, now=clock.now, **PLACING)

    with counting_statements() as statements:
        outcome = execute_one(sessions, copy.id, gateways=gateways, clock=clock)

    assert outcome == runs.Outcome.COMPLETED
    with sessions.begin() as s:
        assert len(recorded(s, _target(s, copy.id).id)) == 2 * lines
    return statements


def test_statements_to_copy_bundle_lines_do_not_grow_with_them(sessions, gateways, clock):
    one = _statements_to_copy(sessions, gateways, clock, lines=1)
    hundred = _statements_to_copy(sessions, gateways, clock, lines=100)

    assert len(hundred) == len(one), "\n".join(hundred)
    assert sum(s.startswith("INSERT INTO line_item_stock") for s in hundred) == 1
