"""Promotions: which apply to an order, the lines they make, and the coupon uses a placed
order holds (``copying.orders.promotions``, through ``order_edits.refresh`` and
``stock.reserve``/``stock.release`` as the API and the copies reach them)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from copying.errors import CopyInputError, InUseError
from copying.orders import order_edits, promotions, stock, targets
from models import (
    Coupon,
    FixedAmountPromotion,
    ItemType,
    LineItem,
    Mode,
    Order,
    PercentageDiscountPromotion,
    PromotionKind,
    Sku,
)
from tests.copying.clock import T0
from tests.factories import (
    Line,
    make_coupon,
    make_order,
    make_promotion,
    make_sku,
    order_lines,
)


def sku_line(code: str, unit: int, quantity: int = 1) -> targets.Line:
    return targets.Line(ItemType.SKUS, code, code, quantity, unit, [], {})


def offer(kind=PromotionKind.PERCENTAGE_DISCOUNT, *, pct=None, fixed=None, skus=None, start=T0):
    return promotions.Offer(
        f"P{pct}{fixed}{start:%H%M}", kind, f"{pct or fixed} off", pct, fixed, skus, None, start
    )


FIXED = PromotionKind.FIXED_AMOUNT


def amounts(made: list[targets.Line]) -> list[tuple[str, int]]:
    return [(line.name, line.unit_amount_cents) for line in made]


# --- the lines promotions make (no database) ---------------------------------------------


def test_a_percentage_rounds_half_up_and_a_fixed_amount_is_cut_to_what_it_covers():
    lines = [sku_line("TEE", 1005), sku_line("CAP", 100)]  # 11.05

    assert amounts(promotions.discount_lines(lines, [offer(pct=10)])) == [("10 off", -111)]
    assert amounts(promotions.discount_lines(lines, [offer(FIXED, fixed=5000)])) == [
        ("5000 off", -1105)
    ]


def test_a_sku_list_limits_what_is_discounted_and_gift_cards_are_never_discounted():
    lines = [
        sku_line("TEE", 1000, 2),
        sku_line("CAP", 500),
        targets.Line(ItemType.GIFT_CARDS, None, "Gift card", 1, 5000, [], {}),
    ]

    made = promotions.discount_lines(
        lines, [offer(pct=50, skus=["CAP"]), offer(FIXED, fixed=700, skus=["MUG"])]
    )

    assert amounts(made) == [("50 off", -250)]  # MUG is not on the order: nothing
    assert amounts(promotions.discount_lines(lines, [offer(pct=10)])) == [("10 off", -250)]


def test_no_discount_takes_the_total_below_zero():
    lines = [
        sku_line("TEE", 1000),
        targets.Line(ItemType.ADJUSTMENTS, None, "Credit", 1, -700, [], {}),
    ]

    made = promotions.discount_lines(
        lines,
        [offer(pct=20), offer(FIXED, fixed=500), offer(FIXED, fixed=100, start=T0 + timedelta(1))],
    )

    # 200 off, then the 500 cut to the 100 left; the last has nothing left to take.
    assert amounts(made) == [("20 off", -200), ("500 off", -100)]
    assert targets.line_totals(lines + made)["total_amount_cents"] == 0


def test_frozen_lines_whose_discount_exceeds_the_order_make_a_zero_total():
    lines = [
        sku_line("TEE", 1000),
        targets.Line(ItemType.PROMOTIONS, None, "Old sale", 1, -1500, [], {}),
    ]

    assert targets.line_totals(lines) == {
        "subtotal_amount_cents": 1000,
        "shipping_amount_cents": 0,
        "adjustment_amount_cents": 0,
        "discount_amount_cents": -1000,
        "total_amount_cents": 0,
    }


def test_percentages_apply_before_fixed_amounts_each_by_start():
    lines = [sku_line("TEE", 10_000)]
    later = offer(pct=10, start=T0 + timedelta(hours=1))

    made = promotions.discount_lines(
        lines, sorted([offer(FIXED, fixed=1000), later, offer(pct=5)], key=_order)
    )

    assert [line.name for line in made] == ["5 off", "10 off", "1000 off"]


def _order(o: promotions.Offer):
    return (o.kind != PromotionKind.PERCENTAGE_DISCOUNT, o.starts_at, o.promotion_id)


# --- which promotions an order gets --------------------------------------------------------


def test_an_order_gets_the_promotions_of_its_mode_and_currency_active_now(sessions):
    hour = timedelta(hours=1)
    with sessions.begin() as s:
        make_promotion(s, name="Now", window=(T0, T0 + hour))
        make_promotion(s, name="Over", window=(T0 - hour, T0))
        make_promotion(s, name="Soon", window=(T0 + hour, T0 + 2 * hour))
        make_promotion(s, name="Euros", currency="EUR")
        make_promotion(s, name="Dollars", currency="USD", percentage=5)
        make_promotion(s, name="Live", mode=Mode.LIVE)
        coupon_only = make_promotion(s, name="Coupon only")
        make_coupon(s, coupon_only, "SPRING")

        found = promotions.offers(s, Mode.TEST, "USD", None, T0)

    assert [o.name for o in found] == ["Dollars", "Now"]  # by start: 2000, then T0


def test_a_valid_coupon_unlocks_its_promotion_whatever_the_case(sessions):
    with sessions.begin() as s:
        promotion = make_promotion(s, name="Spring")
        make_coupon(s, promotion, "Spring-10")

        found = promotions.offers(s, Mode.TEST, "USD", "sPRING-10", T0)

    assert [(o.name, o.coupon_code) for o in found] == [("Spring", "Spring-10")]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda c, p: setattr(c, "expires_at", T0),
            "coupon SPRING expired on 2026-11-20 09:00 UTC",
        ),
        (
            lambda c, p: (setattr(c, "usage_limit", 1), setattr(c, "usage_count", 1)),
            "coupon SPRING has been used up (1 uses of 1)",
        ),
        (
            lambda c, p: setattr(p, "expires_at", T0),
            "coupon SPRING's promotion 'Spring' expired on 2026-11-20 09:00 UTC",
        ),
        (
            lambda c, p: setattr(p, "currency_code", "EUR"),
            "coupon SPRING's promotion 'Spring' is for EUR orders, the order is in USD",
        ),
        (lambda c, p: setattr(c, "mode", Mode.LIVE), "coupon spring does not exist in test mode"),
    ],
)
def test_a_coupon_no_longer_valid_unlocks_nothing_and_says_why(sessions, change, problem):
    with sessions.begin() as s:
        promotion = make_promotion(
            s, name="Spring", window=(T0 - timedelta(days=1), T0 + timedelta(days=1))
        )
        coupon = make_coupon(s, promotion, "SPRING")
        change(coupon, promotion)
        s.flush()

        assert promotions.problem_with_coupon(s, Mode.TEST, "spring", "USD", T0) == problem
        assert promotions.offers(s, Mode.TEST, "USD", "spring", T0) == []


# --- an order refreshed ---------------------------------------------------------------------


def test_refreshing_an_order_prices_its_skus_again_and_makes_its_promotion_lines(sessions):
    with sessions.begin() as s:
        tee = make_sku(s, "TEE", price=2000)
        order = make_order(s, [Line(tee, 2)], coupon_code="vip")
        make_promotion(s, name="Everyone", percentage=10)
        make_coupon(
            s,
            make_promotion(
                s, FixedAmountPromotion, name="VIP", fixed_amount_cents=500, currency="USD"
            ),
            "VIP",
        )
        order.frozen = True
        tee.unit_amount_cents = 2500

        order_edits.refresh(s, order, T0)

        lines = order_lines(s, order.id)
        assert [
            (
                line.item_type,
                line.name,
                line.unit_amount_cents,
                line.total_amount_cents,
                line.coupon_code,
            )
            for line in lines
        ] == [
            (ItemType.SKUS, "Item TEE", 2500, 5000, None),
            (ItemType.PROMOTIONS, "Everyone", -500, -500, None),
            (ItemType.PROMOTIONS, "VIP", -500, -500, "VIP"),
        ]
        assert (order.subtotal_amount_cents, order.discount_amount_cents) == (5000, -1000)
        assert (order.total_amount_cents, order.frozen) == (4000, False)

        # Refreshed again once the coupon is gone: its line goes, the other is remade.
        order_edits.use_coupon(s, order, None, T0)
        assert [(line.name, line.unit_amount_cents) for line in order_lines(s, order.id)] == [
            ("Item TEE", 2500),
            ("Everyone", -500),
        ]
        assert order.total_amount_cents == 4500


def test_a_coupon_that_may_not_go_on_an_order_is_refused_naming_it(sessions):
    with sessions.begin() as s:
        order = make_order(s, [Line(make_sku(s), 1)])
        make_coupon(s, make_promotion(s, currency="EUR"), "EURO")

        with pytest.raises(CopyInputError) as refused:
            order_edits.use_coupon(s, order, "euro", T0)

    assert (refused.value.field, refused.value.message) == (
        "coupon_code",
        "coupon EURO's promotion 'Sale' is for EUR orders, the order is in USD",
    )


def test_promotion_lines_are_never_added_or_removed_by_hand(sessions):
    with sessions.begin() as s:
        make_promotion(s)
        order = make_order(s, [Line(make_sku(s), 1)], promotions_at=T0)
        (promotion_line,) = [line for line in order_lines(s, order.id) if line.promotion_id]

        with pytest.raises(CopyInputError) as added:
            order_edits.add_line(
                s, order, item_type=ItemType.PROMOTIONS, quantity=1, unit_amount_cents=-5
            )
        with pytest.raises(InUseError):
            order_edits.remove_line(s, order, promotion_line)

    assert added.value.field == "item_type"


# --- coupon uses, taken with the stock ------------------------------------------------------


def _coupon_order(s, coupon_limit):
    sku = make_sku(s, "TEE", price=1000, stock=5)
    promotion = make_promotion(s, name="Spring")
    coupon = make_coupon(s, promotion, "SPRING", usage_limit=coupon_limit)
    order = make_order(s, [Line(sku, 2)], coupon_code="spring", promotions_at=T0)
    return sku, coupon, order


def _state(s, sku, coupon, order):
    s.expire_all()
    reserved = [(line.item_type, line.reserved_quantity) for line in order_lines(s, order.id)]
    return s.get_one(Sku, sku.id).stock_quantity, s.get_one(Coupon, coupon.id).usage_count, reserved


def test_placing_takes_a_coupon_use_with_the_stock_and_cancelling_gives_both_back(sessions):
    with sessions.begin() as s:
        sku, coupon, order = _coupon_order(s, coupon_limit=1)
        wanted = targets.demand(targets.load_contents(s, order.id).lines)

        assert stock.reserve(s, order.id, Mode.TEST, wanted) == []
        assert _state(s, sku, coupon, order) == (
            3,
            1,
            [(ItemType.SKUS, 2), (ItemType.PROMOTIONS, 1)],
        )

        stock.release(s, order.id, Mode.TEST)
        assert _state(s, sku, coupon, order) == (
            5,
            0,
            [(ItemType.SKUS, 0), (ItemType.PROMOTIONS, 0)],
        )


def test_a_coupon_used_up_meanwhile_takes_nothing_not_even_the_stock(sessions):
    with sessions.begin() as s:
        sku, coupon, order = _coupon_order(s, coupon_limit=1)
        coupon.usage_count = 1  # another order was placed with it meanwhile
        s.flush()
        wanted = targets.demand(targets.load_contents(s, order.id).lines)

        assert stock.reserve(s, order.id, Mode.TEST, wanted) == [
            "coupon SPRING has been used up (1 uses)"
        ]
        assert _state(s, sku, coupon, order) == (
            5,
            1,
            [(ItemType.SKUS, 0), (ItemType.PROMOTIONS, 0)],
        )


def test_a_coupon_with_uses_or_a_promotion_with_coupons_stays(sessions):
    with sessions.begin() as s:
        _, coupon, order = _coupon_order(s, coupon_limit=3)
        stock.reserve(s, order.id, Mode.TEST, {"TEE": 2})
        s.refresh(coupon)
        promotion = s.get_one(PercentageDiscountPromotion, coupon.promotion_id)

        with pytest.raises(InUseError):
            promotions.check_coupon_deletable(coupon)
        with pytest.raises(InUseError):
            promotions.check_promotion_deletable(s, promotion)
    with pytest.raises(CopyInputError) as below:
        promotions.check_usage_limit(Coupon(usage_limit=1, usage_count=2))

    assert below.value.field == "usage_limit"


def test_coupon_codes_are_unique_per_mode_whatever_the_case(sessions):
    with sessions.begin() as s:
        promotion = make_promotion(s)
        make_coupon(s, promotion, "Winter")
        make_coupon(s, make_promotion(s, mode=Mode.LIVE), "WINTER")  # another mode: fine

        with pytest.raises(CopyInputError) as taken:
            promotions.check_code_free(s, Mode.TEST, "wINTER")
    assert taken.value.field == "code"

    # The database says so too, should two requests race past the check.
    with pytest.raises(IntegrityError, match="uq_coupons_mode_lower_code"), sessions.begin() as s:
        make_coupon(s, s.scalars(select(PercentageDiscountPromotion)).first(), "WINTER")


@pytest.mark.parametrize(
    ("kind", "terms", "field"),
    [
        (PromotionKind.PERCENTAGE_DISCOUNT, {"percentage": 101}, "percentage"),
        (PromotionKind.PERCENTAGE_DISCOUNT, {"percentage": 5, "expires_at": T0}, "expires_at"),
        (PromotionKind.FIXED_AMOUNT, {"fixed_amount_cents": 5}, "currency_code"),
        (PromotionKind.PERCENTAGE_DISCOUNT, {"percentage": 5, "sku_codes": []}, "sku_codes"),
        (
            PromotionKind.PERCENTAGE_DISCOUNT,
            {"percentage": 5, "sku_codes": ["A", "A"]},
            "sku_codes",
        ),
        (PromotionKind.PERCENTAGE_DISCOUNT, {"percentage": 5, "sku_codes": [3]}, "sku_codes"),
    ],
)
def test_a_promotions_terms_are_checked_naming_the_first_wrong_one(kind, terms, field):
    with pytest.raises(CopyInputError) as refused:
        promotions.check_terms(kind, {"starts_at": T0, "expires_at": T0 + timedelta(1), **terms})
    assert refused.value.field == field
    promotions.check_terms(
        PromotionKind.FIXED_AMOUNT,
        {
            "starts_at": T0,
            "expires_at": T0 + timedelta(1),
            "currency_code": "USD",
            "sku_codes": ["A"],
        },
    )


def test_each_kind_is_its_own_subset_of_one_table(sessions):
    with sessions.begin() as s:
        percentage = make_promotion(s)
        fixed = make_promotion(s, FixedAmountPromotion, fixed_amount_cents=100, currency="USD")

        assert s.get(FixedAmountPromotion, percentage.id) is None
        assert s.get(PercentageDiscountPromotion, fixed.id) is None
        assert {p.id for p in s.scalars(select(FixedAmountPromotion))} == {fixed.id}
        assert s.get_one(Order, make_order(s, [Line(make_sku(s), 1)]).id).discount_amount_cents == 0
        assert (
            s.scalars(select(LineItem.promotion_id).where(LineItem.promotion_id.is_not(None))).all()
            == []
        )
