"""Stock reservation: all of an order's SKUs or none, in one statement."""

from __future__ import annotations

from copying.orders import stock, targets
from models import ItemType, Mode, Order, Sku
from tests.factories import Line, make_order, make_sku


def _stock(s, *skus: Sku) -> list[int]:
    return [s.get_one(Sku, sku.id, populate_existing=True).stock_quantity for sku in skus]


def _reserve(s, order: Order) -> list[str]:
    """Reserve as a run does: with the demand it read in the same transaction."""
    wanted = targets.demand(targets.load_contents(s, order.id).lines)
    return stock.reserve(s, order.id, order.mode, wanted)


def test_reserve_takes_every_line_and_release_gives_it_back(sessions):
    with sessions.begin() as s:
        tee = make_sku(s, "TEE", stock=5)
        mug = make_sku(s, "MUG", stock=5)
        order = make_order(
            s,
            [
                Line(tee, 2),
                Line(mug, 1),
                Line(tee, 1),
                Line(item_type=ItemType.ADJUSTMENTS, name="Discount", unit_amount_cents=-100),
            ],
        )

        assert _reserve(s, order) == []
        assert _stock(s, tee, mug) == [2, 4]

        stock.release(s, order.id, Mode.TEST)
        assert _stock(s, tee, mug) == [5, 5]


def test_reserve_is_all_or_nothing(sessions):
    with sessions.begin() as s:
        tee = make_sku(s, "TEE", stock=5)
        mug = make_sku(s, "MUG", stock=1)
        gone = make_sku(s, "GONE", stock=5)
        order = make_order(s, [Line(tee, 2), Line(mug, 3), Line(gone, 1)])
        s.delete(gone)
        s.flush()

        assert _reserve(s, order) == [
            "SKU GONE is unknown",
            "SKU MUG is out of stock (3 requested, 1 left)",
        ]
        assert _stock(s, tee, mug) == [5, 1]


def test_reserve_only_touches_skus_of_the_order_mode(sessions):
    with sessions.begin() as s:
        test_tee = make_sku(s, "TEE", stock=5, mode=Mode.TEST)
        live_tee = make_sku(s, "TEE", stock=5, mode=Mode.LIVE)
        order = make_order(s, [Line(live_tee, 2)], mode=Mode.LIVE)

        assert _reserve(s, order) == []
        assert _stock(s, test_tee, live_tee) == [5, 3]


def test_an_order_without_skus_reserves_nothing(sessions):
    with sessions.begin() as s:
        order = make_order(
            s, [Line(item_type=ItemType.GIFT_CARDS, name="Gift card", unit_amount_cents=2500)]
        )
        assert _reserve(s, order) == []
