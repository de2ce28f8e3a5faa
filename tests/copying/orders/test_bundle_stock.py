"""A bundle line holds its bundle's SKUs' stock while its order is placed, as a SKU line
holds its own, and gives back what it recorded taking, whatever the bundle says by then."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import delete, event, select, text, update

from copying.orders import placing, stock, targets
from models import (
    Bundle,
    ItemType,
    LineItem,
    LineItemStock,
    Mode,
    Order,
    OrderStatus,
    Sku,
    db,
    new_public_id,
)
from tests.factories import Line, make_customer, make_order, make_sku, make_wallet_entry
from tests.money import check


def make_bundle(s, code: str, skus: dict[Sku, int], *, price: int = 1500, **extra: Any) -> Bundle:
    bundle = Bundle(
        id=new_public_id(),
        code=code,
        name=f"Bundle {code}",
        currency_code="USD",
        price_amount_cents=price,
        sku_list_items=[{"sku_code": sku.code, "quantity": n} for sku, n in skus.items()],
        mode=extra.pop("mode", Mode.TEST),
        **extra,
    )
    s.add(bundle)
    s.flush()
    return bundle


def bundle_order(s, bundles: list[tuple[str | None, int]], *skus: Line, **extra: Any) -> Order:
    """A pending order of a bundle line per (bundle code, quantity) (a None code: a bundle
    line naming no bundle), then ``skus``; paid by a wallet entry of its customer."""
    customer = make_customer(s)
    order = make_order(
        s,
        [
            Line(
                item_type=ItemType.BUNDLES,
                name=f"Bundle {code}",
                quantity=n,
                unit_amount_cents=1500,
            )
            for code, n in bundles
        ]
        + list(skus),
        customer=customer,
        wallet_entry=make_wallet_entry(s, customer),
        **extra,
    )
    for position, (code, _) in enumerate(bundles):
        s.execute(
            update(LineItem)
            .where(LineItem.order_id == order.id, LineItem.position == position)
            .values(bundle_code=code)
        )
    return order


def left(s, *skus: Sku) -> list[int]:
    return [s.get_one(Sku, sku.id, populate_existing=True).stock_quantity for sku in skus]


def recorded(s, order_id: str) -> dict[tuple[int, str], int]:
    """What the order's bundle lines record taking, by (line position, SKU code)."""
    return {
        (position, code): quantity
        for position, code, quantity in s.execute(
            select(LineItem.position, LineItemStock.sku_code, LineItemStock.quantity)
            .join(LineItem, LineItem.id == LineItemStock.line_item_id)
            .where(LineItem.order_id == order_id)
        )
    }


def _reserve(s, order: Order) -> list[str]:
    """Reserve as placing does, with the order's demand read in the same transaction."""
    lines = targets.load_contents(s, order.id).lines
    return stock.reserve(
        s, order.id, order.mode, targets.demand(lines), bundled=targets.has_bundles(lines)
    )


def test_a_bundle_line_takes_its_skus_and_records_it_and_release_gives_it_back(sessions):
    with sessions.begin() as s:
        tee, mug = make_sku(s, "TEE", stock=10), make_sku(s, "MUG", stock=10)
        make_bundle(s, "DUO", {tee: 2, mug: 1})
        order = bundle_order(s, [("DUO", 2)], Line(tee, 1))

        assert _reserve(s, order) == []
        assert left(s, tee, mug) == [5, 8]  # 2 * 2 + 1 TEE, 2 * 1 MUG
        assert recorded(s, order.id) == {(0, "TEE"): 4, (0, "MUG"): 2}

        stock.release(s, order.id, Mode.TEST)
        assert left(s, tee, mug) == [10, 10]
        assert recorded(s, order.id) == {}


def test_release_gives_back_what_was_recorded_after_the_bundle_changed(sessions):
    with sessions.begin() as s:
        tee, mug, cap = (make_sku(s, code, stock=10) for code in ("TEE", "MUG", "CAP"))
        bundle = make_bundle(s, "DUO", {tee: 2, mug: 1})
        order = bundle_order(s, [("DUO", 3)])
        assert _reserve(s, order) == []
        assert left(s, tee, mug, cap) == [4, 7, 10]

        bundle.sku_list_items = [
            {"sku_code": "CAP", "quantity": 5},
            {"sku_code": "TEE", "quantity": 1},
        ]
        s.flush()
        stock.release(s, order.id, Mode.TEST)

        assert left(s, tee, mug, cap) == [10, 10, 10]


def test_a_bundle_short_of_a_sku_takes_nothing(sessions):
    with sessions.begin() as s:
        tee, mug = make_sku(s, "TEE", stock=10), make_sku(s, "MUG", stock=3)
        make_bundle(s, "DUO", {tee: 2, mug: 1})
        order = bundle_order(s, [("DUO", 2)], Line(mug, 2))

        assert _reserve(s, order) == ["SKU MUG is out of stock (4 requested, 3 left)"]
        assert left(s, tee, mug) == [10, 3]
        assert recorded(s, order.id) == {}


def test_bundle_lines_naming_no_bundle_of_the_catalog_take_nothing(sessions):
    with sessions.begin() as s:
        tee = make_sku(s, "TEE", stock=10)
        make_bundle(s, "DUO", {tee: 2}, mode=Mode.LIVE)  # another mode's
        order = bundle_order(s, [(None, 1), ("DUO", 1), ("GONE", 1)], Line(tee, 1))

        assert _reserve(s, order) == []
        assert left(s, tee) == [9]
        assert recorded(s, order.id) == {}


def test_placing_and_cancelling_over_the_domain_keeps_stock_conserved(sessions, gateways):
    with sessions.begin() as s:
        tee, mug = make_sku(s, stock=10), make_sku(s, stock=10)
        make_bundle(s, "DUO", {tee: 2, mug: 1})
        order = bundle_order(s, [("DUO", 2)], Line(mug, 1))
    initial = {tee.code: 10, mug.code: 10}

    assert placing.place_order(sessions, order.id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:
        assert left(s, tee, mug) == [6, 7]
        assert check(s, initial)["stock_matches_placed_lines"] == []

    assert placing.cancel_order(sessions, order.id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:
        assert s.get_one(Order, order.id).status == OrderStatus.CANCELLED
        assert left(s, tee, mug) == [10, 10]
        assert recorded(s, order.id) == {}
        assert check(s, initial)["stock_matches_placed_lines"] == []


def test_placing_fails_when_a_bundle_is_short_as_when_a_sku_line_is(sessions, gateways):
    with sessions.begin() as s:
        tee = make_sku(s, "TEE", stock=3)
        make_bundle(s, "DUO", {tee: 2})
        bundled = bundle_order(s, [("DUO", 2)])
        customer = make_customer(s)
        plain = make_order(
            s, [Line(tee, 4)], customer=customer, wallet_entry=make_wallet_entry(s, customer)
        )

    problems = [
        placing.place_order(sessions, order.id, Mode.TEST, gateways=gateways)
        for order in (bundled, plain)
    ]

    assert problems == [["SKU TEE is out of stock (4 requested, 3 left)"]] * 2
    with sessions.begin() as s:
        assert s.get_one(Order, bundled.id).status == OrderStatus.PENDING
        assert left(s, tee) == [3]
        assert recorded(s, bundled.id) == {}


def _placed_duo(sessions, gateways) -> tuple[Sku, Order, dict[str, int]]:
    """A placed order of 2 DUO (2 of a SKU each: 6 of 10 left), and the initial stock."""
    with sessions.begin() as s:
        tee = make_sku(s, stock=10)
        make_bundle(s, "DUO", {tee: 2})
        order = bundle_order(s, [("DUO", 2)])
    assert placing.place_order(sessions, order.id, Mode.TEST, gateways=gateways) == []
    return tee, order, {tee.code: 10}


def test_the_check_catches_a_bundle_line_that_took_stock_without_recording_it(sessions, gateways):
    tee, _, initial = _placed_duo(sessions, gateways)

    with sessions.begin() as s:
        s.execute(delete(LineItemStock))  # taken (6 left), and no line says so
        assert check(s, initial)["stock_matches_placed_lines"] == [
            f"SKU {tee.code}: 6 in stock, expected 10 (10 at first, 0 on placed orders)"
        ]


def test_the_check_catches_a_cancelled_bundle_line_still_recording_stock(sessions, gateways):
    tee, order, initial = _placed_duo(sessions, gateways)

    with sessions.begin() as s:
        line_id = s.scalar(select(LineItem.id).where(LineItem.order_id == order.id))
        s.execute(update(Order).where(Order.id == order.id).values(status=OrderStatus.CANCELLED))
        assert check(s, initial)["stock_matches_placed_lines"] == [
            f"SKU {tee.code}: 6 in stock, expected 10 (10 at first, 0 on placed orders)",
            f"bundle line {line_id} of cancelled order {order.id} records 4 of SKU {tee.code}",
        ]


def test_a_bundle_line_takes_and_gives_back_its_skus_on_sqlite(sqlite):
    sessions, gateways = sqlite
    with sessions.begin() as s:
        tee, mug = make_sku(s, "LITE-TEE", stock=10), make_sku(s, "LITE-MUG", stock=10)
        make_bundle(s, "LITE-DUO", {tee: 2, mug: 1})
        order = bundle_order(s, [("LITE-DUO", 2)], Line(tee, 1))

    assert placing.place_order(sessions, order.id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:
        assert left(s, tee, mug) == [5, 8]
        assert recorded(s, order.id) == {(0, tee.code): 4, (0, mug.code): 2}
    assert placing.cancel_order(sessions, order.id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:
        assert left(s, tee, mug) == [10, 10]
        assert recorded(s, order.id) == {}


def test_stock_given_back_while_a_take_waits_is_taken_on_a_new_try(committed, gateways):
    """A cancel's give-back holds the SKU's row while a place's take waits for it: the
    take's snapshot said too few, the read that follows sees enough, and the take is tried
    again (it used to place the order with nothing taken)."""
    with committed.begin() as s:
        tee = make_sku(s, stock=1)
        make_bundle(s, "DUO", {tee: 2})
        order = bundle_order(s, [("DUO", 1)], Line(tee, 1))
    takes: list[str] = []
    other = db.engine().connect()

    def commit_once_the_take_waits() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with db.engine().connect() as watcher:
                waiting = watcher.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE 'UPDATE skus%'"
                    )
                )
            if waiting:
                break
            time.sleep(0.01)
        other.commit()

    def give_back_while_taking(conn, cursor, statement, parameters, context, executemany) -> None:
        if conn is other or not statement.startswith("UPDATE skus"):
            return
        takes.append(statement)
        if len(takes) == 1:
            other.execute(update(Sku).where(Sku.id == tee.id).values(stock_quantity=5))
            threading.Thread(target=commit_once_the_take_waits).start()

    event.listen(db.engine(), "before_cursor_execute", give_back_while_taking)
    try:
        problems = placing.place_order(committed, order.id, Mode.TEST, gateways=gateways)
    finally:
        event.remove(db.engine(), "before_cursor_execute", give_back_while_taking)
        other.close()

    assert len(takes) == 2  # the first took nothing
    assert problems == []
    with committed.begin() as s:
        assert left(s, tee) == [2]
        assert recorded(s, order.id) == {(0, tee.code): 2}
        assert check(s, {tee.code: 5})["stock_matches_placed_lines"] == []
