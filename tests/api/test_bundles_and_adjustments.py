"""``/api/bundles`` and ``/api/adjustments``: the catalog rows a subscription item may name
besides a SKU (Commerce Layer's), created, read, filtered, changed and deleted over the
API, validated with pointers, each mode's own."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.errors import assert_error

BUNDLE = {
    "code": "KIT",
    "name": "Starter kit",
    "currency_code": "USD",
    "price_amount_cents": 2500,
    "sku_list_items": [{"sku_code": "TEE", "quantity": 2}, {"sku_code": "CAP", "quantity": 1}],
}
ADJUSTMENT = {"name": "Loyalty", "currency_code": "USD", "amount_cents": -300}


def skus(api, *codes: str) -> None:
    for code in codes:
        api.create(
            "skus",
            {"code": code, "name": code, "unit_amount_cents": 100, "currency_code": "USD"},
        )


def post(api, type_: str, attributes: dict[str, Any]) -> Any:
    return api.post(f"/api/{type_}", {"data": {"type": type_, "attributes": attributes}})


def test_a_bundle_is_created_read_filtered_changed_and_deleted(api):
    skus(api, "TEE", "CAP")
    bundle = api.create("bundles", {**BUNDLE, "compare_at_amount_cents": 3000})
    other = api.create(
        "bundles",
        {
            **BUNDLE,
            "code": "MINI",
            "price_amount_cents": 900,
            "sku_list_items": [{"sku_code": "CAP", "quantity": 3}],
        },
    )

    attributes = bundle["attributes"]
    assert {key: attributes[key] for key in BUNDLE} == BUNDLE
    assert (attributes["compare_at_amount_cents"], attributes["skus_count"]) == (3000, 2)
    assert attributes["discontinued"] is False
    assert other["attributes"]["compare_at_amount_cents"] is None
    assert api.retrieve("bundles", bundle["id"]) == bundle
    assert api.ids("/api/bundles", **{"filter[q][code_eq]": "MINI"}) == [other["id"]]
    assert api.ids("/api/bundles", sort="price_amount_cents") == [other["id"], bundle["id"]]

    changed = api.update(
        "bundles",
        bundle["id"],
        {
            "name": "Big kit",
            "price_amount_cents": 2000,
            "sku_list_items": [{"sku_code": "TEE", "quantity": 5}],
            "discontinued": True,
        },
    )
    assert changed.status_code == 200, changed.json()
    assert {
        key: changed.json()["data"]["attributes"][key]
        for key in ("name", "price_amount_cents", "sku_list_items", "skus_count", "discontinued")
    } == {
        "name": "Big kit",
        "price_amount_cents": 2000,
        "sku_list_items": [{"sku_code": "TEE", "quantity": 5}],
        "skus_count": 1,
        "discontinued": True,
    }
    assert api.ids("/api/bundles", **{"filter[q][discontinued_eq]": "true"}) == [bundle["id"]]
    assert api.delete(f"/api/bundles/{bundle['id']}").status_code == 204
    assert_error(api.get(f"/api/bundles/{bundle['id']}"), 404)


@pytest.mark.parametrize(
    ("attributes", "pointer", "detail"),
    [
        ({"code": "TAKEN"}, "/data/attributes/code", "is taken"),
        ({"sku_list_items": []}, "/data/attributes/sku_list_items", "at least one"),
        (
            {"sku_list_items": [{"sku_code": "NOPE", "quantity": 1}]},
            "/data/attributes/sku_list_items",
            "SKU NOPE does not exist in test mode",
        ),
        (
            {"sku_list_items": [{"sku_code": "TEE", "quantity": 1}] * 2},
            "/data/attributes/sku_list_items",
            "named twice",
        ),
        (
            {"sku_list_items": [{"sku_code": "TEE", "quantity": 0}]},
            "/data/attributes/sku_list_items",
            "1 or more",
        ),
        (
            {"sku_list_items": [{"sku_code": "TEE"}]},
            "/data/attributes/sku_list_items",
            "not an object of sku_code and quantity",
        ),
        (
            {"sku_list_items": [{"sku_code": "", "quantity": 1}]},
            "/data/attributes/sku_list_items",
            "not a SKU code",
        ),
        (
            {"sku_list_items": [{"sku_code": "TEE", "quantity": True}]},
            "/data/attributes/sku_list_items",
            "whole number",
        ),
        ({"sku_list_items": ["TEE"]}, "/data/attributes/sku_list_items", None),
        ({"sku_list_items": {"TEE": 1}}, "/data/attributes/sku_list_items", None),
        ({"price_amount_cents": -1}, "/data/attributes/price_amount_cents", None),
        ({"price_amount_cents": None}, "/data/attributes/price_amount_cents", None),
        ({"compare_at_amount_cents": -1}, "/data/attributes/compare_at_amount_cents", None),
        ({"currency_code": "usd"}, "/data/attributes/currency_code", None),
        ({"skus_count": 4}, "/data/attributes/skus_count", None),
    ],
)
def test_a_bad_bundle_is_refused_pointing_at_the_attribute(api, attributes, pointer, detail):
    skus(api, "TEE", "CAP")
    api.create("bundles", {**BUNDLE, "code": "TAKEN"})

    assert_error(
        post(api, "bundles", {**BUNDLE, **attributes}), 422, pointer=pointer, detail=detail
    )
    assert len(api.ids("/api/bundles")) == 1


def test_a_bundle_missing_a_required_attribute_is_refused(api):
    skus(api, "TEE", "CAP")
    for name in ("code", "name", "currency_code", "price_amount_cents", "sku_list_items"):
        attributes = {key: value for key, value in BUNDLE.items() if key != name}
        assert_error(post(api, "bundles", attributes), 422, pointer=f"/data/attributes/{name}")
    assert api.ids("/api/bundles") == []


def test_an_update_to_a_bad_sku_list_changes_nothing(api):
    skus(api, "TEE", "CAP")
    bundle = api.create("bundles", BUNDLE)

    response = api.update(
        "bundles", bundle["id"], {"sku_list_items": [{"sku_code": "GONE", "quantity": 1}]}
    )

    assert_error(response, 422, pointer="/data/attributes/sku_list_items", detail="GONE")
    assert (
        api.retrieve("bundles", bundle["id"])["attributes"]["sku_list_items"]
        == (BUNDLE["sku_list_items"])
    )
    assert_error(api.update("bundles", bundle["id"], {"code": "NEW"}), 422)


def test_an_adjustment_is_created_read_filtered_changed_and_deleted(api):
    discount = api.create("adjustments", ADJUSTMENT)
    fee = api.create(
        "adjustments",
        {
            "name": "Gift wrap",
            "currency_code": "USD",
            "amount_cents": 450,
            "distribute_discount": True,
        },
    )

    assert {key: discount["attributes"][key] for key in ADJUSTMENT} == ADJUSTMENT
    assert discount["attributes"]["distribute_discount"] is False
    assert api.retrieve("adjustments", fee["id"]) == fee
    assert api.ids("/api/adjustments", **{"filter[q][amount_cents_lt]": "0"}) == [discount["id"]]
    assert api.ids("/api/adjustments", sort="-amount_cents") == [fee["id"], discount["id"]]

    changed = api.update("adjustments", fee["id"], {"amount_cents": 500, "name": "Wrap"})
    assert changed.status_code == 200, changed.json()
    assert (
        changed.json()["data"]["attributes"]["amount_cents"],
        changed.json()["data"]["attributes"]["name"],
    ) == (500, "Wrap")
    assert_error(
        api.update("adjustments", fee["id"], {"currency_code": "EUR"}),
        422,
        pointer="/data/attributes/currency_code",
    )
    assert api.delete(f"/api/adjustments/{fee['id']}").status_code == 204
    assert api.ids("/api/adjustments") == [discount["id"]]


@pytest.mark.parametrize(
    ("attributes", "pointer"),
    [
        ({"amount_cents": None}, "/data/attributes/amount_cents"),
        ({"amount_cents": "5"}, "/data/attributes/amount_cents"),
        ({"amount_cents": 2**31}, "/data/attributes/amount_cents"),
        ({"name": ""}, None),
        ({"currency_code": "EURO"}, "/data/attributes/currency_code"),
        ({"distribute_discount": "yes"}, "/data/attributes/distribute_discount"),
    ],
)
def test_a_bad_adjustment_is_refused_pointing_at_the_attribute(api, attributes, pointer):
    response = post(api, "adjustments", {**ADJUSTMENT, **attributes})

    if pointer is None:  # an empty name is a name
        assert response.status_code == 201, response.json()
    else:
        assert_error(response, 422, pointer=pointer)


def test_each_mode_has_its_own_bundles_and_adjustments(api, live_api):
    skus(api, "TEE", "CAP")
    skus(live_api, "TEE", "CAP")
    live_bundle = live_api.create("bundles", BUNDLE)
    live_adjustment = live_api.create("adjustments", ADJUSTMENT)
    test_bundle = api.create("bundles", BUNDLE)  # the same code, in the other mode

    assert api.ids("/api/bundles") == [test_bundle["id"]]
    assert api.ids("/api/adjustments") == []
    for type_, row in (("bundles", live_bundle), ("adjustments", live_adjustment)):
        assert_error(api.get(f"/api/{type_}/{row['id']}"), 404)
        assert_error(api.update(type_, row["id"], {"name": "Mine"}), 404)
        assert_error(api.delete(f"/api/{type_}/{row['id']}"), 404)
        assert live_api.retrieve(type_, row["id"])["meta"] == {"mode": "live"}
    # a live bundle's SKU list names live SKUs: a test SKU alone is not enough
    skus(api, "TEST-ONLY")
    assert_error(
        post(
            live_api,
            "bundles",
            {**BUNDLE, "code": "X", "sku_list_items": [{"sku_code": "TEST-ONLY", "quantity": 1}]},
        ),
        422,
        pointer="/data/attributes/sku_list_items",
        detail="does not exist in live mode",
    )
