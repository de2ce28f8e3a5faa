"""``/api/recurring_order_copies``: renewals as Commerce Layer serves them (read only), and
``copy_type`` on ``/api/order_copies``, which serves both kinds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from api.payloads import payload
from copying.copies.dispatch import unit_of_work
from copying.subscriptions import renewals
from models import Mode, WebhookEvent, utcnow
from tests.api.errors import assert_error
from tests.api.shop import build_shop, create_copy
from tests.fixtures import Published

TYPE = "recurring_order_copies"


def renewal(api, committed, code: str = "RENEWED") -> tuple[str, str]:
    """A subscription of a new shop (its SKU ``code``) activated and renewed by the tick:
    (its id, the copy's)."""
    shop = build_shop(api, code=code)
    subscription = api.create(
        "order_subscriptions",
        {"frequency": "monthly"},
        {"source_order": ("orders", shop.order["id"])},
    )
    api.update("order_subscriptions", subscription["id"], {"_activate": True})
    with unit_of_work(committed, Published()) as s:
        [copy_id] = renewals.tick(s, utcnow() + timedelta(days=40), batch_size=10).copies
    return subscription["id"], copy_id


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def test_renewals_are_listed_and_retrieved_as_recurring_order_copies(api, shop, committed):
    asked = create_copy(api, shop.order["id"])["id"]
    subscription_id, copy_id = renewal(api, committed)

    listed = ok(api.get(f"/api/{TYPE}"))["data"]
    retrieved = api.retrieve(TYPE, copy_id, include="order_subscription")

    assert [(c["type"], c["id"]) for c in listed] == [(TYPE, copy_id)]
    assert set(retrieved["attributes"]) == {
        "status",
        "started_at",
        "completed_at",
        "failed_at",
        "place_target_order",
        "reuse_wallet",
        "errors_log",
        "errors_count",
        "created_at",
        "updated_at",
        "reference",
        "reference_origin",
        "metadata",
    }
    linkage = retrieved["relationships"]["order_subscription"]["data"]
    assert linkage == {"type": "order_subscriptions", "id": subscription_id}
    # A copy asked for is no recurring order copy.
    assert_error(api.get(f"/api/{TYPE}/{asked}"), 404)


def test_a_subscription_lists_its_renewals_as_recurring_order_copies(api, committed):
    subscription_id, copy_id = renewal(api, committed)
    renewal(api, committed, code="OTHER")  # another subscription's

    related = ok(api.get(f"/api/order_subscriptions/{subscription_id}/{TYPE}"))["data"]
    linkage = ok(api.get(f"/api/order_subscriptions/{subscription_id}/relationships/{TYPE}"))
    included = api.retrieve("order_subscriptions", subscription_id, include=TYPE)

    assert [(c["type"], c["id"]) for c in related] == [(TYPE, copy_id)]
    assert linkage["data"] == [{"type": TYPE, "id": copy_id}]
    assert included["relationships"][TYPE]["data"] == [{"type": TYPE, "id": copy_id}]
    filtered = ok(
        api.get(f"/api/{TYPE}", **{"filter[q][order_subscription_id_eq]": subscription_id})
    )
    assert [c["id"] for c in filtered["data"]] == [copy_id]


def test_order_copies_serve_both_kinds_told_apart_by_copy_type(api, shop, committed):
    asked = create_copy(api, shop.order["id"])["id"]
    _, renewed = renewal(api, committed)

    def of_type(copy_type: str) -> list[str]:
        return api.ids("/api/order_copies", **{"filter[q][copy_type_eq]": copy_type})

    assert of_type("order_copies") == [asked]
    assert of_type("recurring_order_copies") == [renewed]
    assert api.retrieve("order_copies", renewed)["attributes"]["copy_type"] == TYPE
    by_type = api.ids("/api/order_copies", sort="copy_type")
    assert by_type == [asked, renewed]


def test_recurring_order_copies_are_read_only(api, committed):
    _, copy_id = renewal(api, committed)
    document = {"data": {"type": TYPE, "id": copy_id, "attributes": {"reference": "x"}}}

    assert_error(api.patch(f"/api/{TYPE}/{copy_id}", document), 405)
    assert_error(api.post(f"/api/{TYPE}", {"data": {"type": TYPE}}), 405)
    assert_error(api.delete(f"/api/{TYPE}/{copy_id}"), 405)


def test_a_renewals_webhook_event_sends_it_as_a_recurring_order_copy(api, committed):
    webhook = api.create(
        "webhooks",
        {
            "topic": "recurring_order_copies.create",
            "callback_url": "https://93.184.215.14/hooks",
            "include_resources": ["order_subscription"],
        },
    )
    subscription_id, copy_id = renewal(api, committed)
    with committed.begin() as s:
        [(resource_type, resource_id)] = s.execute(
            select(WebhookEvent.resource_type, WebhookEvent.resource_id).where(
                WebhookEvent.webhook_id == webhook["id"]
            )
        ).all()
        document = payload(
            s, resource_type, resource_id, Mode.TEST, ["order_subscription"], base_url="http://x"
        )

    assert document is not None
    assert (document["data"]["type"], document["data"]["id"]) == (TYPE, copy_id)
    assert [(i["type"], i["id"]) for i in document["included"]] == [
        ("order_subscriptions", subscription_id)
    ]
