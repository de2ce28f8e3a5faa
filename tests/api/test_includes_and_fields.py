"""``include`` (compound documents) and sparse fieldsets (``fields[type]``)."""

from __future__ import annotations

import pytest

from tests.api.errors import assert_error
from tests.runs import execute_one


@pytest.fixture
def copies(api, shop, committed, gateways):
    """A completed copy (it has a target order) and a pending one (it has none)."""
    done = api.create("order_copies", {}, {"source_order": ("orders", shop.order["id"])})
    execute_one(committed, done["id"], gateways=gateways)
    waiting = api.create("order_copies", {}, {"source_order": ("orders", shop.order["id"])})
    target = api.get(f"/api/order_copies/{done['id']}/target_order").json()["data"]
    return {"done": done["id"], "waiting": waiting["id"], "target": target["id"]}


def by_id(items):
    return {item["id"]: item for item in items}


def test_include_source_and_target_orders_in_a_list(api, shop, copies):
    document = api.get("/api/order_copies", include="source_order,target_order").json()

    included = by_id(document["included"])
    assert set(included) == {shop.order["id"], copies["target"]}
    assert {item["type"] for item in included.values()} == {"orders"}
    assert included[copies["target"]]["attributes"]["status"] == "pending"
    assert included[shop.order["id"]]["links"]["self"].endswith(f"/api/orders/{shop.order['id']}")
    data = by_id(document["data"])
    done = data[copies["done"]]["relationships"]
    assert done["source_order"]["data"] == {"type": "orders", "id": shop.order["id"]}
    assert done["target_order"]["data"] == {"type": "orders", "id": copies["target"]}
    assert "data" not in done["order_subscription"]  # not included: links only
    waiting = data[copies["waiting"]]["relationships"]
    assert waiting["target_order"]["data"] is None


def test_an_included_resource_appears_once(api, shop, copies):
    document = api.get("/api/order_copies", include="source_order,source_order").json()

    assert [item["id"] for item in document["included"]] == [shop.order["id"]]


def test_include_on_retrieve_and_create(api, shop, copies):
    retrieved = api.get(f"/api/order_copies/{copies['done']}", include="target_order").json()
    created = api.client.post(
        "/api/order_copies?include=source_order",
        json={
            "data": {
                "type": "order_copies",
                "relationships": {
                    "source_order": {"data": {"type": "orders", "id": shop.order["id"]}}
                },
            }
        },
        headers=api.headers(),
    )

    assert [i["id"] for i in retrieved["included"]] == [copies["target"]]
    assert created.status_code == 201
    assert [i["id"] for i in created.json()["included"]] == [shop.order["id"]]


def test_include_a_to_many_relationship(api, shop):
    document = api.get(f"/api/orders/{shop.order['id']}", include="line_items").json()

    lines = document["data"]["relationships"]["line_items"]["data"]
    assert len(lines) == 1
    assert lines[0]["type"] == "line_items"
    assert [i["id"] for i in document["included"]] == [lines[0]["id"]]
    assert document["included"][0]["attributes"]["sku_code"] == "TEE"


def test_no_include_no_included_member(api, copies):
    assert "included" not in api.get("/api/order_copies").json()


@pytest.mark.parametrize("include", ["customer", "source_order.line_items", "orders", ","])
def test_an_unknown_include_is_a_400(api, copies, include):
    assert_error(
        api.get("/api/order_copies", include=include),
        400,
        parameter="include",
        code="INVALID_INCLUDE",
    )


def test_sparse_fields_keep_only_the_named_attributes(api, copies):
    document = api.get("/api/order_copies", **{"fields[order_copies]": "status"}).json()

    for item in document["data"]:
        assert item["attributes"] == {"status": item["attributes"]["status"]}
        assert "relationships" not in item
        assert item["meta"] == {"mode": "test"}
        assert item["links"]["self"].endswith(item["id"])
    assert {i["attributes"]["status"] for i in document["data"]} == {"completed", "pending"}


def test_sparse_fields_may_name_relationships_too(api, copies):
    item = api.get(
        f"/api/order_copies/{copies['done']}",
        **{"fields[order_copies]": "errors_count,target_order"},
    ).json()["data"]

    assert item["attributes"] == {"errors_count": 0}
    assert set(item["relationships"]) == {"target_order"}


def test_sparse_fields_apply_to_included_resources(api, shop, copies):
    document = api.get(
        f"/api/order_copies/{copies['done']}",
        include="source_order",
        **{"fields[orders]": "number,status", "fields[order_copies]": "source_order"},
    ).json()

    assert document["data"]["attributes"] == {}
    assert document["data"]["relationships"]["source_order"]["data"]["id"] == shop.order["id"]
    assert set(document["included"][0]["attributes"]) == {"number", "status"}
    assert "relationships" not in document["included"][0]


def test_an_empty_fieldset_keeps_no_attributes(api, copies):
    item = api.get(f"/api/order_copies/{copies['done']}", **{"fields[order_copies]": ""}).json()

    assert item["data"]["attributes"] == {}


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("fields[order_copies]", "status,colour"),
        ("fields[order_copies]", "attempt"),  # internal columns are not fields
        ("fields[widgets]", "name"),
    ],
)
def test_an_unknown_field_or_type_is_a_400(api, copies, parameter, value):
    assert_error(api.get("/api/order_copies", **{parameter: value}), 400, parameter=parameter)
