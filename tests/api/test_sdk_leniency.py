"""What a JSON:API client may send and Commerce Layer's JS SDK does send, accepted: a
``relationships`` object in every create and update (the SDK always sends one, empty
when nothing is related), ``null`` to unlink a relationship, and members of a resource
identifier that it does not name (the SDK sends the whole resource when handed the
object it got back). What Commerce Layer refuses too stays a 422: read-only attributes,
relationships that may not change, a required relationship missing.

tests/interop/ drives the API with the SDK itself; these pin each case on its own."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api import schemas
from api.resources import REGISTRY
from tests.api.errors import assert_error
from tests.api.shop import Shop, create_copy

#: Types the SDK creates with ``"relationships": {}``: none of them relates to anything.
CREATES: dict[str, dict[str, Any]] = {
    "skus": {"code": "MUG", "name": "Mug", "unit_amount_cents": 900, "currency_code": "USD"},
    "customers": {"email": "grace@example.com"},
    "addresses": {"line_1": "Via Po 3", "city": "Turin", "country_code": "IT"},
    "webhooks": {"topic": "order_copies.complete", "callback_url": "https://93.184.215.14/h"},
}
#: Types with an update route, each with a record to update in ``_row`` (every type's
#: body is checked in test_every_body_takes_an_empty_relationships_object).
UPDATED = [
    "addresses",
    "customer_payment_sources",
    "customers",
    "order_copies",
    "order_subscriptions",
    "orders",
    "skus",
    "webhooks",
]


def data(type_: str, id_: str | None = None, **members: Any) -> dict[str, Any]:
    return {"data": {"type": type_, **({"id": id_} if id_ else {}), **members}}


def _body_errors(body: type[Any], document: dict[str, Any]) -> list[Any]:
    try:
        body.model_validate(document)
    except ValidationError as error:
        return list(error.errors())
    return []


@pytest.mark.parametrize("type_", sorted(REGISTRY))
def test_every_body_takes_an_empty_relationships_object(type_):
    """Of every type, present and to come: a create's body may lack attributes it
    requires (an empty relationships object does not stand in for them), never refuse
    the object itself; an update's takes it whole."""
    resource = REGISTRY[type_]
    empty = {"attributes": {}, "relationships": {}}

    created = _body_errors(schemas.create_body(resource), data(type_, **empty))
    updated = _body_errors(schemas.update_body(resource), data(type_, "some-id", **empty))

    missing = {("data", "attributes", a.name) for a in resource.attributes if a.required} | {
        ("data", "relationships", r.name) for r in resource.relationships if r.required
    }
    assert {tuple(error["loc"]) for error in created} <= missing, created
    assert all(error["type"] == "missing" for error in created), created
    assert updated == []


@pytest.mark.parametrize("type_", sorted(CREATES))
def test_a_create_takes_an_empty_relationships_object(api, type_):
    response = api.post(f"/api/{type_}", data(type_, attributes=CREATES[type_], relationships={}))

    assert response.status_code == 201, response.json()
    assert response.json()["data"]["type"] == type_


def _row(api, shop: Shop, type_: str) -> str:
    """The id of a record of ``type_`` that an update may touch."""
    if type_ == "orders":  # the shop's order is placed; a draft takes any update
        return str(api.create("orders", {"currency_code": "USD"})["id"])
    if type_ == "order_copies":
        return str(create_copy(api, shop.order["id"])["id"])
    if type_ == "order_subscriptions":
        subscription = api.create(
            type_, {"frequency": "monthly"}, {"source_order": ("orders", shop.order["id"])}
        )
        return str(subscription["id"])
    if type_ == "webhooks":
        return str(api.create(type_, CREATES[type_])["id"])
    found = {
        "skus": shop.sku,
        "customers": shop.customer,
        "customer_payment_sources": shop.entry,
        "addresses": shop.billing,
    }
    return str(found[type_]["id"])


@pytest.mark.parametrize("type_", UPDATED)
def test_an_update_takes_an_empty_relationships_object(api, shop, type_):
    row_id = _row(api, shop, type_)
    before = api.retrieve(type_, row_id)

    response = api.patch(
        f"/api/{type_}/{row_id}", data(type_, row_id, attributes={}, relationships={})
    )

    assert response.status_code == 200, response.json()
    after = response.json()["data"]
    assert after["attributes"] == {
        **before["attributes"],
        "updated_at": after["attributes"]["updated_at"],
    }


def test_an_order_copy_update_with_an_empty_relationships_object_changes_its_attributes(api, shop):
    """The SDK's ``cl.order_copies.update({id, reference, metadata})``: a 422 before."""
    copy = create_copy(api, shop.order["id"])

    response = api.patch(
        f"/api/order_copies/{copy['id']}",
        data(
            "order_copies",
            copy["id"],
            attributes={"reference": "sdk-1", "metadata": {"by": "sdk"}},
            relationships={},
        ),
    )

    assert response.status_code == 200, response.json()
    attributes = response.json()["data"]["attributes"]
    assert (attributes["reference"], attributes["metadata"]) == ("sdk-1", {"by": "sdk"})


def test_a_trigger_with_an_empty_relationships_object_runs(api, shop):
    """The SDK's ``cl.order_copies.update({id, _abort: true})``."""
    copy = create_copy(api, shop.order["id"])

    response = api.patch(
        f"/api/order_copies/{copy['id']}",
        data("order_copies", copy["id"], attributes={"_abort": True}, relationships={}),
    )

    assert response.status_code == 200, response.json()
    assert response.json()["data"]["attributes"]["status"] == "aborted"


def test_a_relationship_set_to_null_unlinks_it(api, shop):
    """The SDK's ``cl.addresses.relationship(null)``: ``{"data": null}`` (accepted before
    too; pinned here with the rest of what the SDK sends)."""
    order = api.create(
        "orders", {"currency_code": "USD"}, {"shipping_address": ("addresses", shop.shipping["id"])}
    )

    response = api.patch(
        f"/api/orders/{order['id']}",
        data(
            "orders", order["id"], attributes={}, relationships={"shipping_address": {"data": None}}
        ),
    )

    assert response.status_code == 200, response.json()
    linked = api.get(f"/api/orders/{order['id']}/relationships/shipping_address").json()
    assert linked == {"data": None}


def test_an_identifier_ignores_the_members_it_does_not_name(api, shop):
    """The SDK's ``cl.order_copies.create({source_order: order})`` with the order it got
    back: the relationship's data is the whole resource (JSON:API: members a server does
    not know are ignored)."""
    order = api.retrieve("orders", shop.order["id"], include="customer")
    whole = {**order, "meta": {**order["meta"], "note": "as the SDK sends it"}}

    response = api.post(
        "/api/order_copies",
        data("order_copies", attributes={}, relationships={"source_order": {"data": whole}}),
    )

    assert response.status_code == 201, response.json()
    copy_id = response.json()["data"]["id"]
    linked = api.get(f"/api/order_copies/{copy_id}/relationships/source_order").json()
    assert linked == {"data": {"type": "orders", "id": shop.order["id"]}}


def test_an_identifier_with_other_members_still_names_its_type_and_id(api, shop):
    customer = api.retrieve("customers", shop.customer["id"])

    wrong_type = api.post(
        "/api/order_copies",
        data("order_copies", relationships={"source_order": {"data": customer}}),
    )
    no_id = api.post(
        "/api/order_copies",
        data(
            "order_copies",
            relationships={"source_order": {"data": {"type": "orders", "number": 1}}},
        ),
    )

    assert_error(wrong_type, 422, pointer="/data/relationships/source_order/data/type")
    assert_error(no_id, 422, pointer="/data/relationships/source_order/data/id")


# --- what Commerce Layer refuses as well ----------------------------------------------


def test_a_read_only_attribute_echoed_back_is_refused(api, shop):
    """``cl.order_copies.update({...copy, reference})``: the copy as retrieved carries its
    status, which no client sets (Commerce Layer: "Param not allowed")."""
    copy = create_copy(api, shop.order["id"])

    response = api.patch(
        f"/api/order_copies/{copy['id']}",
        data("order_copies", copy["id"], attributes={**copy["attributes"], "reference": "x"}),
    )

    first = assert_error(response, 422)
    assert first["source"]["pointer"].startswith("/data/attributes/")
    assert api.retrieve("order_copies", copy["id"])["attributes"]["reference"] is None


def test_a_relationship_an_update_may_not_change_is_refused(api, shop):
    copy = create_copy(api, shop.order["id"])
    source = {"data": {"type": "orders", "id": shop.order["id"]}}

    response = api.patch(
        f"/api/order_copies/{copy['id']}",
        data("order_copies", copy["id"], relationships={"source_order": source}),
    )

    assert_error(response, 422, pointer="/data/relationships/source_order")


@pytest.mark.parametrize(
    ("relationships", "pointer"),
    [
        ({}, "/data/relationships/source_order"),
        ({"source_order": {"data": None}}, "/data/relationships/source_order/data"),
    ],
)
def test_a_required_relationship_is_still_required(api, relationships, pointer):
    response = api.post(
        "/api/order_copies", data("order_copies", attributes={}, relationships=relationships)
    )

    assert_error(response, 422, pointer=pointer)
