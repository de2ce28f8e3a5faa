"""A key's mode scopes every read and write: a test key never sees a live record
(404 by id, absent from every list), and cannot point at one."""

from __future__ import annotations

import pytest

from tests.api.errors import assert_error
from tests.api.shop import build_shop


@pytest.fixture
def live(live_api):
    """A live shop with a copy of its order."""
    shop = build_shop(live_api, code="LIVE")
    copy = live_api.create("order_copies", {}, {"source_order": ("orders", shop.order["id"])})
    line = live_api.get(f"/api/orders/{shop.order['id']}/line_items").json()["data"][0]
    return {
        "skus": shop.sku["id"],
        "customers": shop.customer["id"],
        "customer_payment_sources": shop.entry["id"],
        "addresses": shop.billing["id"],
        "orders": shop.order["id"],
        "line_items": line["id"],
        "order_copies": copy["id"],
    }


TYPES = [
    "skus",
    "customers",
    "customer_payment_sources",
    "addresses",
    "orders",
    "line_items",
    "order_copies",
]


@pytest.mark.parametrize("type_", TYPES)
def test_a_test_key_gets_404_for_a_live_record(api, live_api, live, type_):
    path = f"/api/{type_}/{live[type_]}"

    assert live_api.get(path).status_code == 200
    assert_error(api.get(path), 404, code="RECORD_NOT_FOUND", detail="test mode")


@pytest.mark.parametrize("type_", TYPES)
def test_a_test_key_never_lists_a_live_record(api, live_api, live, type_):
    assert live[type_] in live_api.ids(f"/api/{type_}")
    assert api.ids(f"/api/{type_}") == []
    assert api.get(f"/api/{type_}").json()["meta"]["record_count"] == 0
    assert api.ids(f"/api/{type_}", **{"filter[q][id_eq]": live[type_]}) == []


def test_a_test_key_cannot_change_or_delete_a_live_record(api, live_api, live):
    copy_id = live["order_copies"]

    assert_error(api.update("order_copies", copy_id, {"reference": "mine"}), 404)
    assert_error(api.delete(f"/api/order_copies/{copy_id}"), 404)
    assert_error(api.update("skus", live["skus"], {"stock_quantity": 0}), 404)
    assert live_api.retrieve("order_copies", copy_id)["attributes"]["reference"] is None
    assert live_api.retrieve("skus", live["skus"])["attributes"]["stock_quantity"] == 8


@pytest.mark.parametrize(
    "path",
    [
        "/api/orders/{orders}/line_items",
        "/api/orders/{orders}/order_copies",
        "/api/customers/{customers}/customer_payment_sources",
        "/api/order_copies/{order_copies}/source_order",
        "/api/order_copies/{order_copies}/relationships/source_order",
    ],
)
def test_a_test_key_gets_404_for_related_routes_of_a_live_record(api, live, path):
    assert_error(api.get(path.format(**live)), 404)


def test_a_test_key_cannot_create_records_pointing_at_live_ones(api, live):
    copy = api.post(
        "/api/order_copies",
        {
            "data": {
                "type": "order_copies",
                "relationships": {
                    "source_order": {"data": {"type": "orders", "id": live["orders"]}}
                },
            }
        },
    )
    wallet = api.post(
        "/api/customer_payment_sources",
        {
            "data": {
                "type": "customer_payment_sources",
                "attributes": {"payment_source_token": "tok_visa"},
                "relationships": {
                    "customer": {"data": {"type": "customers", "id": live["customers"]}}
                },
            }
        },
    )
    line = api.post(
        "/api/line_items",
        {
            "data": {
                "type": "line_items",
                "attributes": {"sku_code": "TEE"},
                "relationships": {"order": {"data": {"type": "orders", "id": live["orders"]}}},
            }
        },
    )

    assert_error(copy, 422, pointer="/data/relationships/source_order")
    assert_error(wallet, 422, pointer="/data/relationships/customer")
    assert_error(line, 422, pointer="/data/relationships/order")


def test_a_draft_order_cannot_take_a_live_address_or_wallet_entry(api, live):
    customer = api.create("customers", {"email": "t@example.com"})
    order = api.create(
        "orders", {"currency_code": "USD"}, {"customer": ("customers", customer["id"])}
    )

    address = api.update(
        "orders", order["id"], relationships={"billing_address": ("addresses", live["addresses"])}
    )
    wallet = api.update(
        "orders", order["id"], {"_customer_payment_source_id": live["customer_payment_sources"]}
    )

    assert_error(address, 422, pointer="/data/relationships/billing_address")
    assert_error(
        wallet,
        422,
        pointer="/data/attributes/_customer_payment_source_id",
        detail="no longer exists",
    )


def test_a_live_sku_is_no_sku_to_a_test_order(api, live):
    customer = api.create("customers", {"email": "t@example.com"})
    order = api.create(
        "orders", {"currency_code": "USD"}, {"customer": ("customers", customer["id"])}
    )

    response = api.post(
        "/api/line_items",
        {
            "data": {
                "type": "line_items",
                "attributes": {"sku_code": "LIVE"},
                "relationships": {"order": {"data": {"type": "orders", "id": order["id"]}}},
            }
        },
    )

    assert_error(response, 422, pointer="/data/attributes/sku_code", detail="test mode")


def test_sku_codes_are_unique_per_mode(api, live):
    sku = api.create(
        "skus",
        {"code": "LIVE", "name": "Same code", "unit_amount_cents": 100, "currency_code": "USD"},
    )

    assert sku["meta"] == {"mode": "test"}


def test_includes_never_reach_into_the_other_mode(api, live_api, live):
    live_document = live_api.get("/api/order_copies", include="source_order").json()
    test_document = api.get("/api/order_copies", include="source_order").json()

    assert [i["id"] for i in live_document["included"]] == [live["orders"]]
    assert test_document == {
        "data": [],
        "included": [],
        "meta": {"record_count": 0, "page_count": 0},
        "links": test_document["links"],
    }
