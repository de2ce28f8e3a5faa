"""Promotions and coupons over HTTP: the resources, their bad input (422s pointing at the
attribute), an order's coupon_code and promotion lines, frozen copy targets, and the copy
options ``apply_promotions`` and ``ignore_invalid_coupon``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from models import Promotion, db, utcnow
from tests.api.errors import assert_error
from tests.api.shop import build_shop, create_copy, run
from tests.api.test_end_to_end import wait_until_finished

NOW = utcnow()
WINDOW = {
    "starts_at": (NOW - timedelta(days=1)).isoformat(),
    "expires_at": (NOW + timedelta(days=30)).isoformat(),
}


def percentage(api: Any, percent: int = 10, **attributes: Any) -> dict[str, Any]:
    return api.create(
        "percentage_discount_promotions",
        {"name": f"{percent}% off", "percentage": percent, **WINDOW, **attributes},
    )


def fixed(api: Any, cents: int = 500, **attributes: Any) -> dict[str, Any]:
    return api.create(
        "fixed_amount_promotions",
        {
            "name": f"{cents} off",
            "fixed_amount_cents": cents,
            "currency_code": "USD",
            **WINDOW,
            **attributes,
        },
    )


def coupon(api: Any, promotion: dict[str, Any], code: str, **attributes: Any) -> dict[str, Any]:
    return api.create(
        "coupons", {"code": code, **attributes}, {"promotion": ("promotions", promotion["id"])}
    )


def lines(api: Any, order_id: str) -> list[tuple[str, str, int]]:
    """The order's lines: SKU lines, then promotion lines, each by name."""
    document = api.get(f"/api/orders/{order_id}/line_items").json()
    found = [
        (
            line["attributes"]["item_type"],
            line["attributes"]["name"],
            line["attributes"]["total_amount_cents"],
        )
        for line in document["data"]
    ]
    return sorted(found, key=lambda line: (line[0] != "skus", line[1]))


def amounts(order: dict[str, Any]) -> tuple[int, int, int]:
    attributes = order["attributes"]
    return (
        attributes["subtotal_amount_cents"],
        attributes["discount_amount_cents"],
        attributes["total_amount_cents"],
    )


# --- the resources ----------------------------------------------------------------------


def test_both_kinds_are_listed_as_promotions_and_each_under_its_own_name(api, live_api):
    ten = percentage(api, 10, sku_codes=["TEE"])
    five = fixed(api, 500)
    percentage(live_api, 50)  # another mode: never seen

    listed = api.get("/api/promotions", sort="name").json()["data"]
    assert [(p["id"], p["type"], p["attributes"]["promotion_type"]) for p in listed] == [
        (ten["id"], "promotions", "percentage_discount_promotions"),
        (five["id"], "promotions", "fixed_amount_promotions"),
    ]
    assert ten["attributes"]["sku_codes"] == ["TEE"]
    assert (ten["attributes"]["active"], ten["attributes"]["currency_code"]) == (True, None)
    assert api.ids("/api/percentage_discount_promotions") == [ten["id"]]
    assert api.ids("/api/fixed_amount_promotions") == [five["id"]]
    assert api.get(f"/api/fixed_amount_promotions/{ten['id']}").status_code == 404
    assert api.ids(
        "/api/promotions", **{"filter[q][promotion_type_eq]": "fixed_amount_promotions"}
    ) == [five["id"]]
    # Read-only as a whole: each kind is written through its own resource.
    assert api.delete(f"/api/promotions/{ten['id']}").status_code == 405


def test_a_promotion_and_its_coupons_are_updated_listed_and_deleted(api):
    promotion = fixed(api, 500)
    spring = coupon(api, promotion, "Spring-5", usage_limit=10)
    assert (spring["attributes"]["usage_count"], spring["attributes"]["usage_limit"]) == (0, 10)

    updated = api.update("fixed_amount_promotions", promotion["id"], {"fixed_amount_cents": 700})
    assert updated.status_code == 200, updated.json()
    assert updated.json()["data"]["attributes"]["fixed_amount_cents"] == 700
    assert api.ids(f"/api/promotions/{promotion['id']}/coupons") == [spring["id"]]
    assert api.get(f"/api/coupons/{spring['id']}/promotion").json()["data"]["id"] == promotion["id"]

    assert_error(api.delete(f"/api/fixed_amount_promotions/{promotion['id']}"), 409, code="IN_USE")
    assert api.delete(f"/api/coupons/{spring['id']}").status_code == 204
    assert api.delete(f"/api/fixed_amount_promotions/{promotion['id']}").status_code == 204


@pytest.mark.parametrize(
    ("type_", "attributes", "pointer"),
    [
        ("percentage_discount_promotions", {"percentage": 0}, "percentage"),
        ("percentage_discount_promotions", {"percentage": 101}, "percentage"),
        ("percentage_discount_promotions", {"percentage": "10"}, "percentage"),
        ("percentage_discount_promotions", {"fixed_amount_cents": 10}, "fixed_amount_cents"),
        ("percentage_discount_promotions", {"expires_at": WINDOW["starts_at"]}, "expires_at"),
        ("percentage_discount_promotions", {"starts_at": "tomorrow"}, "starts_at"),
        ("percentage_discount_promotions", {"sku_codes": []}, "sku_codes"),
        ("percentage_discount_promotions", {"sku_codes": ["TEE", 4]}, "sku_codes"),
        ("percentage_discount_promotions", {"currency_code": "usd"}, "currency_code"),
        ("percentage_discount_promotions", {"name": "x" * 256}, "name"),
        ("fixed_amount_promotions", {"fixed_amount_cents": 0}, "fixed_amount_cents"),
        ("fixed_amount_promotions", {"currency_code": None}, "currency_code"),
        ("fixed_amount_promotions", {"percentage": 10}, "percentage"),
    ],
)
def test_a_bad_promotion_is_a_422_pointing_at_the_attribute(api, type_, attributes, pointer):
    base: dict[str, Any] = {"name": "Sale", **WINDOW}
    base.update(
        {"percentage": 10}
        if type_.startswith("percentage")
        else {"fixed_amount_cents": 100, "currency_code": "USD"}
    )
    response = api.post(
        f"/api/{type_}", {"data": {"type": type_, "attributes": {**base, **attributes}}}
    )
    assert_error(response, 422, pointer=f"/data/attributes/{pointer}")


def test_a_bad_promotion_update_is_a_422_pointing_at_the_attribute(api):
    promotion = percentage(api, 10)
    for attributes, pointer in [
        ({"percentage": 200}, "percentage"),
        ({"starts_at": WINDOW["expires_at"]}, "expires_at"),
    ]:
        response = api.update("percentage_discount_promotions", promotion["id"], attributes)
        assert_error(response, 422, pointer=f"/data/attributes/{pointer}")
    assert api.retrieve("promotions", promotion["id"])["attributes"]["percentage"] == 10


@pytest.mark.parametrize(
    ("attributes", "pointer"),
    [
        ({"code": "two words"}, "code"),
        ({"code": "é"}, "code"),
        ({"code": "x" * 65}, "code"),
        ({"code": "OK", "usage_limit": 0}, "usage_limit"),
        ({"code": "OK", "expires_at": "2027-01-01"}, "expires_at"),
        ({"code": "summer"}, "code"),  # SUMMER is taken: codes ignore case
    ],
)
def test_a_bad_coupon_is_a_422_pointing_at_the_attribute(api, attributes, pointer):
    promotion = percentage(api)
    coupon(api, promotion, "SUMMER")
    response = api.post(
        "/api/coupons",
        {
            "data": {
                "type": "coupons",
                "attributes": attributes,
                "relationships": {
                    "promotion": {"data": {"type": "promotions", "id": promotion["id"]}}
                },
            }
        },
    )
    assert_error(response, 422, pointer=f"/data/attributes/{pointer}")


def test_coupon_codes_are_per_mode_and_a_coupon_needs_a_promotion_of_its_mode(api, live_api):
    coupon(api, percentage(api), "SUMMER")
    coupon(live_api, percentage(live_api), "summer")  # the other mode's: fine
    response = live_api.post(
        "/api/coupons",
        {
            "data": {
                "type": "coupons",
                "attributes": {"code": "AUTUMN"},
                "relationships": {
                    "promotion": {"data": {"type": "promotions", "id": percentage(api)["id"]}}
                },
            }
        },
    )
    assert_error(response, 422, pointer="/data/relationships/promotion")


# --- an order's promotions ----------------------------------------------------------------


def test_an_orders_promotion_lines_follow_its_lines_and_its_coupon(api):
    shop = build_shop(api, price=1500, quantity=2, place=False)  # 30.00
    order_id = shop.order["id"]
    percentage(api, 10)
    vip = coupon(api, fixed(api, 5000, name="VIP"), "VIP")

    order = api.update("orders", order_id, {"coupon_code": "vip"}).json()["data"]
    assert order["attributes"]["coupon_code"] == "vip"
    assert lines(api, order_id) == [
        ("skus", "TEE tee", 3000),
        ("promotions", "10% off", -300),
        ("promotions", "VIP", -2700),  # 50.00 off is cut: the total stays at zero
    ]
    assert amounts(order) == (3000, -3000, 0)

    order = api.update("orders", order_id, {"coupon_code": None}).json()["data"]
    assert amounts(order) == (3000, -300, 2700)
    assert lines(api, order_id)[1:] == [("promotions", "10% off", -300)]

    api.create("line_items", {"sku_code": "TEE", "quantity": 1}, {"order": ("orders", order_id)})
    assert amounts(api.retrieve("orders", order_id)) == (4500, -450, 4050)
    assert api.retrieve("coupons", vip["id"])["attributes"]["usage_count"] == 0


@pytest.mark.parametrize(
    ("code", "detail"),
    [
        ("NOPE", "coupon NOPE does not exist in test mode"),
        ("OLD", "coupon OLD expired on"),
        ("EURO", "is for EUR orders, the order is in USD"),
        ("bad code", "should match pattern"),
    ],
)
def test_a_coupon_that_cannot_go_on_the_order_is_a_422_pointing_at_coupon_code(api, code, detail):
    shop = build_shop(api, place=False)
    coupon(api, percentage(api), "OLD", expires_at=(NOW - timedelta(hours=1)).isoformat())
    coupon(api, fixed(api, currency_code="EUR"), "EURO")

    response = api.update("orders", shop.order["id"], {"coupon_code": code})
    assert_error(response, 422, pointer="/data/attributes/coupon_code", detail=detail)
    created = api.post(
        "/api/orders",
        {"data": {"type": "orders", "attributes": {"currency_code": "USD", "coupon_code": code}}},
    )
    assert_error(created, 422, pointer="/data/attributes/coupon_code", detail=detail)
    assert api.retrieve("orders", shop.order["id"])["attributes"]["coupon_code"] is None


def test_promotion_lines_are_not_written_by_hand(api):
    shop = build_shop(api, place=False)
    response = api.post(
        "/api/line_items",
        {
            "data": {
                "type": "line_items",
                "attributes": {"item_type": "promotions", "unit_amount_cents": -100},
                "relationships": {"order": {"data": {"type": "orders", "id": shop.order["id"]}}},
            }
        },
    )
    assert_error(response, 422, pointer="/data/attributes/item_type")
    percentage(api, 10)
    api.create(
        "line_items", {"sku_code": "TEE", "quantity": 1}, {"order": ("orders", shop.order["id"])}
    )
    document = api.get(
        f"/api/orders/{shop.order['id']}/line_items", **{"filter[q][item_type_eq]": "promotions"}
    ).json()
    (promotion_line,) = document["data"]
    assert_error(api.delete(f"/api/line_items/{promotion_line['id']}"), 409, code="IN_USE")


def test_placing_refreshes_the_order_and_takes_its_coupons_use_cancelling_gives_it_back(api):
    shop = build_shop(api, price=1000, quantity=1, place=False)
    order_id = shop.order["id"]
    gone = percentage(api, 50, name="Gone soon")
    spring = coupon(api, fixed(api, 100, name="Spring"), "SPRING", usage_limit=1)
    api.update("orders", order_id, {"coupon_code": "SPRING"})
    assert amounts(api.retrieve("orders", order_id)) == (1000, -600, 400)
    with db.sessions().begin() as s:  # the 50% sale ends before the order is placed
        s.execute(update(Promotion).where(Promotion.id == gone["id"]).values(expires_at=NOW))

    placed = api.update("orders", order_id, {"_place": True})
    assert placed.status_code == 200, placed.json()
    assert amounts(placed.json()["data"]) == (1000, -100, 900)
    assert api.retrieve("coupons", spring["id"])["attributes"]["usage_count"] == 1

    assert api.update("orders", order_id, {"_cancel": True}).status_code == 200
    assert api.retrieve("coupons", spring["id"])["attributes"]["usage_count"] == 0


def test_a_used_up_coupon_gives_no_discount_and_its_limit_stays_at_its_uses(api):
    shops = [
        build_shop(api, code=code, price=1000, quantity=1, place=False)
        for code in ("TEE", "CAP", "MUG")
    ]
    spring = coupon(api, percentage(api), "SPRING", usage_limit=2)
    for shop in shops:
        assert api.update("orders", shop.order["id"], {"coupon_code": "spring"}).status_code == 200
    for shop in shops[:2]:
        assert api.update("orders", shop.order["id"], {"_place": True}).status_code == 200

    response = api.update("orders", shops[2].order["id"], {"_place": True})

    # Refreshed before it is placed: the coupon no longer unlocks anything, so the order is
    # placed at its full price and the coupon's two uses stay the first two orders'.
    assert response.status_code == 200, response.json()
    assert amounts(response.json()["data"]) == (1000, 0, 1000)
    assert api.retrieve("coupons", spring["id"])["attributes"]["usage_count"] == 2
    assert_error(
        api.update("coupons", spring["id"], {"usage_limit": 1}),
        422,
        pointer="/data/attributes/usage_limit",
        detail="is below the 2 uses placed orders hold",
    )
    assert_error(api.delete(f"/api/coupons/{spring['id']}"), 409, code="IN_USE")


# --- copies: frozen targets and the two options --------------------------------------------


@pytest.fixture
def discounted(api):
    """A placed source order of 2 TEE at 15.00 with a 10% sale and the coupon SPRING (5.00
    off), both over by the time it is copied."""
    shop = build_shop(api, price=1500, quantity=2, stock=20, place=False)
    sale = percentage(api, 10, name="Sale")
    spring = coupon(api, fixed(api, 500, name="Spring"), "SPRING", usage_limit=5)
    api.update("orders", shop.order["id"], {"coupon_code": "SPRING"})
    placed = api.update("orders", shop.order["id"], {"_place": True})
    assert placed.status_code == 200, placed.json()
    assert amounts(placed.json()["data"]) == (3000, -800, 2200)
    with db.sessions().begin() as s:
        s.execute(update(Promotion).where(Promotion.id == sale["id"]).values(expires_at=NOW))
    api.update("skus", shop.sku["id"], {"unit_amount_cents": 1700})
    return shop, spring


def test_a_frozen_target_keeps_its_promotions_until_it_is_edited(
    api, discounted, committed, gateways
):
    shop, _ = discounted
    copy = create_copy(api, shop.order["id"])
    run(committed, gateways, copy["id"])

    target = api.get(f"/api/order_copies/{copy['id']}/target_order").json()["data"]
    assert (target["attributes"]["frozen"], target["attributes"]["coupon_code"]) == (True, "SPRING")
    assert amounts(target) == (3000, -800, 2200)
    assert lines(api, target["id"]) == lines(api, shop.order["id"])

    # Edited: refreshed as any order is (TEE at 17.00 now, the sale over, SPRING still on).
    api.create(
        "line_items", {"sku_code": "TEE", "quantity": 1}, {"order": ("orders", target["id"])}
    )
    edited = api.retrieve("orders", target["id"])
    assert edited["attributes"]["frozen"] is False
    assert amounts(edited) == (5100, -500, 4600)


def test_the_copy_options_are_created_shown_and_applied(api, discounted, committed, gateways):
    shop, spring = discounted
    api.update("coupons", spring["id"], {"expires_at": (NOW - timedelta(minutes=1)).isoformat()})
    percentage(api, 20, name="Today")

    strict = create_copy(api, shop.order["id"], apply_promotions=True)
    lenient = create_copy(api, shop.order["id"], apply_promotions=True, ignore_invalid_coupon=True)
    assert (
        strict["attributes"]["apply_promotions"],
        strict["attributes"]["ignore_invalid_coupon"],
    ) == (True, False)
    run(committed, gateways, strict["id"])
    run(committed, gateways, lenient["id"])

    strict = api.retrieve("order_copies", strict["id"])
    assert strict["attributes"]["status"] == "failed"
    assert list(strict["attributes"]["errors_log"]) == ["coupon_code"]
    assert strict["attributes"]["errors_log"]["coupon_code"][0].startswith(
        "coupon SPRING expired on"
    )
    lenient = api.retrieve("order_copies", lenient["id"])
    assert (lenient["attributes"]["status"], lenient["attributes"]["errors_log"]) == (
        "completed",
        {},
    )
    target = api.get(f"/api/order_copies/{lenient['id']}/target_order").json()["data"]
    assert target["attributes"]["coupon_code"] is None
    assert lines(api, target["id"]) == [("skus", "TEE tee", 3000), ("promotions", "Today", -600)]
    assert api.ids("/api/order_copies", **{"filter[q][apply_promotions_eq]": "true"}) == [
        lenient["id"],
        strict["id"],
    ]


@pytest.mark.parametrize("option", ["apply_promotions", "ignore_invalid_coupon"])
def test_a_copy_option_that_is_not_a_boolean_is_a_422(api, shop, option):
    response = api.post(
        "/api/order_copies",
        {
            "data": {
                "type": "order_copies",
                "attributes": {option: "yes"},
                "relationships": {
                    "source_order": {"data": {"type": "orders", "id": shop.order["id"]}}
                },
            }
        },
    )
    assert_error(response, 422, pointer=f"/data/attributes/{option}")


@pytest.mark.worker
@pytest.mark.slow
def test_frozen_and_apply_promotions_copies_run_by_a_real_worker(api, discounted, celery_worker):
    shop, spring = discounted
    percentage(api, 20, name="Today")

    frozen = api.create(
        "order_copies", {"place_target_order": True}, {"source_order": ("orders", shop.order["id"])}
    )
    applied = api.create(
        "order_copies",
        {"place_target_order": True, "apply_promotions": True},
        {"source_order": ("orders", shop.order["id"])},
    )
    frozen, applied = (wait_until_finished(api, c["id"]) for c in (frozen, applied))

    for copy in (frozen, applied):
        assert (copy["attributes"]["status"], copy["attributes"]["errors_log"]) == ("completed", {})
    frozen_target = next(i for i in frozen["included"] if i["id"] != shop.order["id"])
    applied_target = next(i for i in applied["included"] if i["id"] != shop.order["id"])
    assert (
        frozen_target["attributes"]["status"] == applied_target["attributes"]["status"] == "placed"
    )
    assert amounts(frozen_target) == (3000, -800, 2200)  # as the source was sold
    assert amounts(applied_target) == (3000, -1100, 1900)  # Today's 20% and SPRING again
    assert lines(api, applied_target["id"])[1:] == [
        ("promotions", "Spring", -500),
        ("promotions", "Today", -600),
    ]
    # The source and both targets each hold a use of SPRING.
    assert api.retrieve("coupons", spring["id"])["attributes"]["usage_count"] == 3
