"""Order subscription items that name a bundle or an adjustment (Commerce Layer's: an item
is a SKU, a bundle or an adjustment): made from a source order's bundle lines of the
subscription's frequency or over the API, validated, changed, and renewed, by the engine
here and by a real worker under two beat ticks at the end. A placed bundle line holds its
SKUs' stock (1 TEE and 2 CAP a KIT), recorded apart from its reserved_quantity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from copying.errors import ErrorKey
from copying.runs import Outcome
from copying.subscriptions import failures
from models import utcnow
from tests import money
from tests.api.errors import assert_error
from tests.api.shop import Shop, build_shop, create_copy, run
from tests.api.test_order_subscription_items import (
    STOCK,
    SUBSCRIPTIONS,
    TYPE,
    line,
    ok,
    post_item,
    read_target_lines,
    renew,
    renewed_once_by_two_ticks,
    sku,
    start,
    subscribe,
)
from tests.invariants import violations
from tests.runs import execute_one

KIT = {
    "code": "KIT",
    "name": "Starter kit",
    "currency_code": "USD",
    "price_amount_cents": 2500,
    "sku_list_items": [{"sku_code": "TEE", "quantity": 1}, {"sku_code": "CAP", "quantity": 2}],
}


@dataclass
class Catalog:
    shop: Shop
    #: Adjustments by name: USD (-300), FEE (USD, 450), EUR (-100, in EUR), LIVE (live mode).
    adjustments: dict[str, str]


def bundle(api, code: str, **attributes: Any) -> dict[str, Any]:
    return api.create("bundles", {**KIT, "code": code, **attributes})


def adjustment(api, name: str, amount: int, currency: str = "USD") -> str:
    created = api.create(
        "adjustments", {"name": name, "currency_code": currency, "amount_cents": amount}
    )
    return str(created["id"])


def catalog(api, live_api=None, *, place: bool = True) -> Catalog:
    """A placed order of 2 TEE (1500 each) and 1 KIT bundle (2500), both subscribed
    monthly; bundles MINI (900), OLDKIT (discontinued), EUKIT (EUR); adjustments."""
    shop = build_shop(api, code="TEE", stock=STOCK, frequency="monthly", place=False)
    sku(api, "CAP", 900)
    bundle(api, "KIT")
    bundle(api, "MINI", price_amount_cents=900, name="Mini kit")
    bundle(api, "OLDKIT", discontinued=True)
    bundle(api, "EUKIT", currency_code="EUR")
    made = line(api, shop.order["id"], item_type="bundles", bundle_code="KIT", frequency="monthly")
    assert made.status_code == 201, made.json()
    if place:
        shop.order = ok(api.update("orders", shop.order["id"], {"_place": True}))
    adjustments = {
        "USD": adjustment(api, "Loyalty", -300),
        "FEE": adjustment(api, "Gift wrap", 450),
        "EUR": adjustment(api, "Euro loyalty", -100, "EUR"),
    }
    if live_api is not None:
        adjustments["LIVE"] = adjustment(live_api, "Live loyalty", -300)
    return Catalog(shop, adjustments)


def adjustment_link(adjustment_id: str | None) -> dict[str, Any]:
    return {"adjustment": {"data": {"type": "adjustments", "id": adjustment_id}}}


def items(api, subscription_id: str) -> list[tuple[str, str | None, int, int]]:
    """(item_type, the code or adjustment id named, quantity, unit amount), oldest first."""
    response = api.get(
        f"/api/{SUBSCRIPTIONS}/{subscription_id}/{TYPE}", sort="created_at", include="adjustment"
    )
    assert response.status_code == 200, response.json()
    found = []
    for item in response.json()["data"]:
        attributes = item["attributes"]
        linked = item["relationships"]["adjustment"]["data"]
        named = attributes["sku_code"] or attributes["bundle_code"] or (linked and linked["id"])
        found.append(
            (
                attributes["item_type"],
                named,
                attributes["quantity"],
                attributes["unit_amount_cents"],
            )
        )
    return found


def target_lines(committed, copy_id: str) -> list[tuple[str, str | None, str, int, int, int]]:
    """(item_type, sku or bundle code, name, quantity, unit amount, reserved quantity)."""
    return read_target_lines(
        committed,
        copy_id,
        lambda line: (
            line.item_type.value,
            line.sku_code or line.bundle_code,
            line.name,
            line.quantity,
            line.unit_amount_cents,
            line.reserved_quantity,
        ),
    )


# --- line items naming their bundle --------------------------------------------------------


def test_a_bundle_line_is_named_and_priced_as_its_bundle_and_may_be_subscribed(api):
    setup = catalog(api, place=False)
    order_id = setup.shop.order["id"]
    priced = line(api, order_id, bundle_code="MINI", unit_amount_cents=800)  # a bundle line

    lines = api.get(f"/api/orders/{order_id}/line_items", sort="created_at").json()["data"]
    assert [
        (
            li["attributes"]["item_type"],
            li["attributes"]["bundle_code"],
            li["attributes"]["name"],
            li["attributes"]["unit_amount_cents"],
            li["attributes"]["frequency"],
        )
        for li in lines
    ] == [
        ("skus", None, "TEE tee", 1500, "monthly"),
        ("bundles", "KIT", "Starter kit", 2500, "monthly"),
        ("bundles", "MINI", "Mini kit", 800, None),
    ]
    assert priced.status_code == 201
    assert api.ids("/api/line_items", **{"filter[q][bundle_code_eq]": "MINI"}) == [
        priced.json()["data"]["id"]
    ]


@pytest.mark.parametrize(
    ("attributes", "pointer", "detail"),
    [
        ({"item_type": "bundles", "bundle_code": "NOPE"}, "bundle_code", "does not exist"),
        ({"item_type": "bundles", "bundle_code": "OLDKIT"}, "bundle_code", "discontinued"),
        ({"item_type": "bundles", "bundle_code": "EUKIT"}, "bundle_code", "priced in EUR"),
        ({"sku_code": "TEE", "bundle_code": "KIT"}, "bundle_code", "a skus line names no"),
        (
            {"item_type": "bundles", "name": "Kit", "unit_amount_cents": 5, "frequency": "weekly"},
            "frequency",
            "names its bundle_code",
        ),
    ],
)
def test_a_bad_bundle_line_is_refused_pointing_at_it(api, attributes, pointer, detail):
    setup = catalog(api, place=False)

    response = line(api, setup.shop.order["id"], **attributes)

    assert_error(response, 422, pointer=f"/data/attributes/{pointer}", detail=detail)
    assert len(api.ids(f"/api/orders/{setup.shop.order['id']}/line_items")) == 2


def test_a_copy_carries_a_bundle_line_as_sold_taking_its_skus_stock(api, committed, gateways):
    """The bundle line is copied frozen (even once the bundle is discontinued), and, placed,
    takes its SKUs' stock as the source's did."""
    setup = catalog(api)
    ok(
        api.update(
            "bundles",
            api.ids("/api/bundles", **{"filter[q][code_eq]": "KIT"})[0],
            {"discontinued": True},
        )
    )

    copy = create_copy(api, setup.shop.order["id"], place_target_order=True)
    assert run(committed, gateways, copy["id"]) == Outcome.COMPLETED

    assert target_lines(committed, copy["id"]) == [
        ("skus", "TEE", "TEE tee", 2, 1500, 2),
        ("bundles", "KIT", "Starter kit", 1, 2500, 0),
    ]
    stocks = {
        s["attributes"]["code"]: s["attributes"]["stock_quantity"]
        for s in api.get("/api/skus").json()["data"]
    }
    # The source's 2 + 1 TEE and 2 CAP, and the target's as many.
    assert stocks == {"TEE": STOCK - 6, "CAP": STOCK - 4}


# --- items naming a bundle or an adjustment ------------------------------------------------


def test_a_subscription_gets_an_item_per_sku_and_bundle_line_of_its_frequency(api):
    setup = catalog(api)

    subscription = subscribe(api, setup.shop)

    assert items(api, subscription["id"]) == [("skus", "TEE", 2, 1500), ("bundles", "KIT", 1, 2500)]
    [tee, kit] = api.get(
        f"/api/{SUBSCRIPTIONS}/{subscription['id']}/{TYPE}", sort="created_at"
    ).json()["data"]
    assert api.get(f"/api/{TYPE}/{kit['id']}/bundle").json()["data"]["attributes"]["code"] == (
        "KIT"
    )
    assert api.get(f"/api/{TYPE}/{kit['id']}/sku").json() == {"data": None}
    assert api.get(f"/api/{TYPE}/{tee['id']}/sku").json()["data"]["attributes"]["code"] == "TEE"
    assert (
        api.get(f"/api/{TYPE}/{kit['id']}/source_line_item").json()["data"]["attributes"][
            "bundle_code"
        ]
        == "KIT"
    )


def test_an_item_names_a_bundle_or_an_adjustment_at_its_price_by_default(api):
    setup = catalog(api)
    subscription = subscribe(api, setup.shop, "daily")  # no line is daily: no items yet

    mini = ok_created(post_item(api, subscription["id"], bundle_code="MINI", quantity=2))
    kit = ok_created(post_item(api, subscription["id"], bundle_code="KIT"))
    loyalty = ok_created(
        post_item(api, subscription["id"], adjustment_link(setup.adjustments["USD"]))
    )
    fee = ok_created(
        post_item(
            api,
            subscription["id"],
            adjustment_link(setup.adjustments["FEE"]),
            unit_amount_cents=-50,
        )
    )

    assert items(api, subscription["id"]) == [
        ("bundles", "MINI", 2, 900),  # the bundle's price
        ("bundles", "KIT", 1, 2500),  # the source order's line of it
        ("adjustments", setup.adjustments["USD"], 1, -300),  # the adjustment's amount
        ("adjustments", setup.adjustments["FEE"], 1, -50),
    ]
    assert loyalty["attributes"]["total_amount_cents"] == -300
    assert (kit["attributes"]["item_type"], kit["attributes"]["sku_code"]) == ("bundles", None)
    included = api.get(f"/api/{TYPE}/{loyalty['id']}", include="adjustment").json()
    assert [(i["type"], i["attributes"]["name"]) for i in included["included"]] == [
        ("adjustments", "Loyalty")
    ]
    assert api.ids(
        f"/api/{TYPE}", **{"filter[q][item_type_eq]": "adjustments"}, sort="unit_amount_cents"
    ) == [loyalty["id"], fee["id"]]
    assert api.ids(f"/api/{TYPE}", **{"filter[q][bundle_code_eq]": "MINI"}) == [mini["id"]]


def ok_created(response: Any) -> dict[str, Any]:
    assert response.status_code == 201, response.json()
    return response.json()["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("attributes", "adjustment_named", "pointer", "detail"),
    [
        ({"quantity": 1}, None, "/data/attributes/sku_code", "needs a sku_code, a bundle_code"),
        ({"sku_code": "TEE", "bundle_code": "KIT"}, None, "/data/attributes/bundle_code", "one"),
        ({"sku_code": "TEE"}, "USD", "/data/relationships/adjustment", "sku_code is given"),
        ({"bundle_code": "KIT"}, "USD", "/data/relationships/adjustment", "bundle_code is"),
        ({"bundle_code": "NOPE"}, None, "/data/attributes/bundle_code", "not exist in test"),
        ({"bundle_code": "OLDKIT"}, None, "/data/attributes/bundle_code", "discontinued"),
        ({"bundle_code": "EUKIT"}, None, "/data/attributes/bundle_code", "priced in EUR"),
        (
            {"bundle_code": "KIT", "unit_amount_cents": -1},
            None,
            "/data/attributes/unit_amount_cents",
            "only an adjustment's",
        ),
        ({}, "EUR", "/data/relationships/adjustment", "is in EUR"),
        ({}, "LIVE", "/data/relationships/adjustment", "does not exist in test mode"),
        ({}, "NOPE", "/data/relationships/adjustment", "does not exist in test mode"),
        (
            {"quantity": 2**30, "unit_amount_cents": -100},
            "USD",
            "/data/attributes/quantity",
            "more than",
        ),
    ],
)
def test_an_item_naming_none_two_or_a_bad_one_is_refused(
    api, live_api, attributes, adjustment_named, pointer, detail
):
    setup = catalog(api, live_api)
    subscription = subscribe(api, setup.shop, "daily")
    relationships = (
        adjustment_link(setup.adjustments.get(adjustment_named, "NoSuchId0"))
        if adjustment_named
        else None
    )

    response = post_item(api, subscription["id"], relationships, **attributes)

    assert_error(response, 422, pointer=pointer, detail=detail)
    assert items(api, subscription["id"]) == []


def test_an_item_keeps_its_kind_and_takes_the_price_of_what_it_names_next(api):
    setup = catalog(api)
    subscription = subscribe(api, setup.shop)
    [tee, kit] = api.ids(f"/api/{SUBSCRIPTIONS}/{subscription['id']}/{TYPE}", sort="created_at")
    loyalty = ok_created(
        post_item(api, subscription["id"], adjustment_link(setup.adjustments["USD"]))
    )["id"]

    assert (
        ok(api.update(TYPE, kit, {"bundle_code": "MINI"}))["attributes"]["unit_amount_cents"] == 900
    )
    changed = ok(
        api.update(
            TYPE, loyalty, relationships={"adjustment": ("adjustments", setup.adjustments["FEE"])}
        )
    )
    assert changed["attributes"]["unit_amount_cents"] == 450
    assert (
        ok(api.update(TYPE, loyalty, {"unit_amount_cents": -25}))["attributes"][
            "total_amount_cents"
        ]
        == -25
    )

    refused = [
        (api.update(TYPE, tee, {"bundle_code": "KIT"}), "/data/attributes/bundle_code"),
        (api.update(TYPE, tee, {"sku_code": None}), "/data/attributes/sku_code"),
        (api.update(TYPE, kit, {"bundle_code": None}), "/data/attributes/bundle_code"),
        (api.update(TYPE, kit, {"bundle_code": "OLDKIT"}), "/data/attributes/bundle_code"),
        (api.update(TYPE, kit, {"unit_amount_cents": -1}), "/data/attributes/unit_amount_cents"),
        (  # the relationship is looked up before the attributes are checked: nothing flushed
            api.update(
                TYPE,
                kit,
                {"unit_amount_cents": -1},
                relationships={"adjustment": ("adjustments", setup.adjustments["USD"])},
            ),
            "/data/relationships/adjustment",
        ),
        (
            api.update(
                TYPE,
                tee,
                {"bundle_code": ""},
                relationships={"adjustment": ("adjustments", setup.adjustments["USD"])},
            ),
            "/data/attributes/bundle_code",
        ),
        (
            api.update(
                TYPE, tee, relationships={"adjustment": ("adjustments", setup.adjustments["USD"])}
            ),
            "/data/relationships/adjustment",
        ),
        (
            api.update(TYPE, loyalty, relationships={"adjustment": None}),
            "/data/relationships/adjustment",
        ),
        (
            api.update(
                TYPE,
                loyalty,
                relationships={"adjustment": ("adjustments", setup.adjustments["EUR"])},
            ),
            "/data/relationships/adjustment",
        ),
    ]
    for response, pointer in refused:
        assert_error(response, 422, pointer=pointer)
    assert items(api, subscription["id"]) == [
        ("skus", "TEE", 2, 1500),
        ("bundles", "MINI", 1, 900),
        ("adjustments", setup.adjustments["FEE"], 1, -25),
    ]


def test_an_adjustment_named_by_an_item_is_not_deleted(api):
    setup = catalog(api)
    subscription = subscribe(api, setup.shop)
    item = ok_created(post_item(api, subscription["id"], adjustment_link(setup.adjustments["USD"])))

    response = api.delete(f"/api/adjustments/{setup.adjustments['USD']}")

    assert_error(response, 409, code="IN_USE", detail="order subscription items")
    assert api.delete(f"/api/{TYPE}/{item['id']}").status_code == 204
    assert api.delete(f"/api/adjustments/{setup.adjustments['USD']}").status_code == 204


# --- renewals ------------------------------------------------------------------------------


def subscribed_to_all_three(api, setup: Catalog) -> dict[str, Any]:
    """The monthly subscription of 2 TEE and 1 KIT, plus the Loyalty adjustment twice."""
    subscription = subscribe(api, setup.shop)
    ok_created(
        post_item(api, subscription["id"], adjustment_link(setup.adjustments["USD"]), quantity=2)
    )
    return subscription


EXPECTED_LINES = [
    ("skus", "TEE", "TEE tee", 2, 1500, 2),
    ("bundles", "KIT", "Starter kit", 1, 2500, 0),  # its SKUs' stock recorded apart
    ("adjustments", None, "Loyalty", 2, -300, 0),
]
EXPECTED_TOTALS = {
    "subtotal_amount_cents": 5500,
    "adjustment_amount_cents": -600,
    "discount_amount_cents": 0,
    "total_amount_cents": 4900,
}


def assert_renewed_once(api, committed, copy_id: str) -> None:
    assert target_lines(committed, copy_id) == EXPECTED_LINES
    target = api.get(f"/api/order_copies/{copy_id}/target_order").json()["data"]["attributes"]
    assert target["status"] == "placed"
    assert {key: target[key] for key in EXPECTED_TOTALS} == EXPECTED_TOTALS
    stock = {"TEE": STOCK, "CAP": STOCK}
    with committed.begin() as session:
        assert violations(session, [copy_id], stock) == []
        assert money.violations(session, stock) == []
    stocks = {
        s["attributes"]["code"]: s["attributes"]["stock_quantity"]
        for s in api.get("/api/skus").json()["data"]
    }
    # The source's and the renewal's 2 TEE and 1 KIT each (1 TEE and 2 CAP a KIT).
    assert stocks == {"TEE": STOCK - 6, "CAP": STOCK - 4}


def test_a_renewal_builds_sku_bundle_and_adjustment_lines_from_the_items(api, committed, gateways):
    setup = catalog(api)
    subscription = subscribed_to_all_three(api, setup)
    start(api, subscription)

    [copy_id] = renew(committed, utcnow() + timedelta(days=40))
    assert execute_one(committed, copy_id, gateways=gateways) == Outcome.COMPLETED

    assert_renewed_once(api, committed, copy_id)


def test_a_renewal_whose_bundle_is_discontinued_fails_saying_so(api, committed, gateways):
    setup = catalog(api)
    subscription = subscribed_to_all_three(api, setup)
    start(api, subscription)
    [kit] = api.ids("/api/bundles", **{"filter[q][code_eq]": "KIT"})
    ok(api.update("bundles", kit, {"discontinued": True}))

    [copy_id] = renew(committed, utcnow() + timedelta(days=40))
    assert execute_one(committed, copy_id, gateways=gateways) == Outcome.FAILED

    errors = api.retrieve("order_copies", copy_id)["attributes"]["errors_log"]
    assert errors[ErrorKey.LINE_ITEMS] == ["bundle KIT is discontinued"]
    assert failures.why_not_retry(errors) == "bundle KIT is discontinued"


@pytest.mark.worker
def test_sku_bundle_and_adjustment_items_renew_exactly_once_under_two_ticks(
    api, committed, celery_worker
):
    """Two ticks through Redis for the same due period: one renewal, whose target the
    worker builds from the three items and places."""
    setup = catalog(api)
    subscription = subscribed_to_all_three(api, setup)
    start(api, subscription)

    copy = renewed_once_by_two_ticks(api, committed, subscription["id"])

    assert_renewed_once(api, committed, copy["id"])
