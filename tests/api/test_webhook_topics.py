"""Order, subscription and destroy topics over HTTP: webhooks created with ``POST
/api/webhooks`` are owed exactly one event per trigger, create or DELETE; a destroy event
keeps the deleted resource's document and is delivered with it, signed; an event whose
resource was deleted before it was sent fails at once, the circuit untouched."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from config import get_settings
from copying.copies.dispatch import unit_of_work
from copying.runs import Outcome
from copying.subscriptions import renewals
from copying.webhooks import topics
from copying.webhooks.signing import SIGNATURE_HEADER, signature
from models import EventCallback, EventStatus, Webhook, WebhookEvent, utcnow
from tasks.webhooks import deliver_webhooks
from tests.api.errors import assert_error
from tests.api.shop import build_shop, create_copy, run
from tests.fixtures import Published
from tests.webhooks.receiver import Answer, running_receiver
from tests.webhooks.test_events import owed

#: A public address written as one: accepted without asking DNS, never called here.
PUBLIC = "https://93.184.215.14/hooks"
SUBSCRIPTIONS = "order_subscriptions"
SUBSCRIPTION_TOPICS = (
    topics.SUBSCRIPTION_CREATE,
    topics.SUBSCRIPTION_ACTIVATE,
    topics.SUBSCRIPTION_DEACTIVATE,
    topics.SUBSCRIPTION_CANCEL,
    topics.SUBSCRIPTION_DESTROY,
    topics.LAST_RUN_FAILED,
    topics.LAST_RUN_SUCCEEDED,
    topics.SUBSCRIPTION_PENDING,
    topics.SUBSCRIPTION_RENEWAL,
)


@pytest.fixture(autouse=True)
def _settings(settings_env: dict[str, str]) -> None:
    """Receivers on loopback allowed; payload links as the test client's GET writes them."""
    settings_env.update(
        ORDERCOPY_WEBHOOKS_ALLOW_PRIVATE="true",
        ORDERCOPY_WEBHOOKS_TIMEOUT_SECONDS="2",
        ORDERCOPY_PUBLIC_URL="http://testserver",
    )
    get_settings.cache_clear()


def hook(api, topic: str, url: str = PUBLIC, **attributes: Any) -> dict[str, Any]:
    response = api.post(
        "/api/webhooks",
        {
            "data": {
                "type": "webhooks",
                "attributes": {"topic": topic, "callback_url": url, **attributes},
            }
        },
    )
    assert response.status_code == 201, response.json()
    return response.json()["data"]  # type: ignore[no-any-return]


def hooks(api, *names: str, **attributes: Any) -> dict[str, str]:
    """A webhook per topic: their ids, by topic."""
    return {name: hook(api, name, **attributes)["id"] for name in names}


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.json()
    return response.json()["data"]  # type: ignore[no-any-return]


def subscribe(api, shop) -> dict[str, Any]:
    """A draft, to move step by step."""
    return api.create(
        SUBSCRIPTIONS,
        {"frequency": "monthly", "activate_by_source_order": False},
        {"source_order": ("orders", shop.order["id"])},
    )


def trigger(api, type_: str, id_: str, name: str) -> dict[str, Any]:
    return ok(api.update(type_, id_, {name: True}))


def payload_of(committed, webhook_id: str) -> Any:
    with committed.begin() as s:
        return s.scalars(
            select(WebhookEvent.payload).where(WebhookEvent.webhook_id == webhook_id)
        ).one()


def events_of(committed, webhook_id: str) -> list[WebhookEvent]:
    with committed.begin() as s:
        rows = s.scalars(select(WebhookEvent).where(WebhookEvent.webhook_id == webhook_id)).all()
        for row in rows:
            s.expunge(row)
        return list(rows)


def callbacks_of(committed, webhook_id: str) -> list[EventCallback]:
    with committed.begin() as s:
        rows = s.scalars(select(EventCallback).where(EventCallback.webhook_id == webhook_id)).all()
        for row in rows:
            s.expunge(row)
        return list(rows)


def circuit_failures(committed, webhook_id: str) -> int:
    with committed.begin() as s:
        return s.get_one(Webhook, webhook_id).circuit_failure_count


# --- subscriptions -------------------------------------------------------------------


def test_creating_and_moving_a_subscription_owes_one_event_each(api, shop, committed):
    ids = hooks(api, *SUBSCRIPTION_TOPICS)
    subscription = subscribe(api, shop)
    sub_id = subscription["id"]
    expected = Counter({(ids[topics.SUBSCRIPTION_CREATE], topics.SUBSCRIPTION_CREATE, sub_id): 1})
    assert owed(committed) == expected

    for name, topic, status in (
        ("_activate", topics.SUBSCRIPTION_ACTIVATE, "active"),
        ("_deactivate", topics.SUBSCRIPTION_DEACTIVATE, "inactive"),
        ("_activate", topics.SUBSCRIPTION_ACTIVATE, "active"),
        ("_cancel", topics.SUBSCRIPTION_CANCEL, "cancelled"),
    ):
        assert trigger(api, SUBSCRIPTIONS, sub_id, name)["attributes"]["status"] == status
        expected[ids[topic], topic, sub_id] += 1
        assert owed(committed) == expected

    # A move refused (cancelled for good) owes nothing.
    assert_error(api.update(SUBSCRIPTIONS, sub_id, {"_activate": True}), 409)
    assert owed(committed) == expected


def test_deleting_a_subscription_owes_its_destroy_event_with_its_document(api, shop, committed):
    destroyed = hook(api, topics.SUBSCRIPTION_DESTROY, include_resources=["source_order"])["id"]
    others = hooks(api, *(t for t in SUBSCRIPTION_TOPICS if t != topics.SUBSCRIPTION_DESTROY))
    subscription = subscribe(api, shop)
    document = api.get(f"/api/{SUBSCRIPTIONS}/{subscription['id']}", include="source_order")
    assert document.status_code == 200

    response = api.delete(f"/api/{SUBSCRIPTIONS}/{subscription['id']}")

    assert response.status_code == 204
    assert_error(api.delete(f"/api/{SUBSCRIPTIONS}/{subscription['id']}"), 404)
    created = topics.SUBSCRIPTION_CREATE
    assert owed(committed) == Counter(
        {
            (others[created], created, subscription["id"]): 1,
            (destroyed, topics.SUBSCRIPTION_DESTROY, subscription["id"]): 1,
        }
    )
    stored = payload_of(committed, destroyed)
    assert stored == document.json()
    assert (stored["data"]["type"], stored["data"]["id"]) == (SUBSCRIPTIONS, subscription["id"])
    assert [(i["type"], i["id"]) for i in stored["included"]] == [("orders", shop.order["id"])]


def test_deleting_a_running_subscription_is_a_409_and_owes_nothing(api, shop, committed):
    destroyed = hook(api, topics.SUBSCRIPTION_DESTROY)["id"]
    subscription = subscribe(api, shop)
    trigger(api, SUBSCRIPTIONS, subscription["id"], "_activate")
    with unit_of_work(committed, Published()) as s:
        assert len(renewals.tick(s, utcnow() + timedelta(days=40), batch_size=10).copies) == 1
    assert api.retrieve(SUBSCRIPTIONS, subscription["id"])["attributes"]["status"] == "running"

    response = api.delete(f"/api/{SUBSCRIPTIONS}/{subscription['id']}")

    assert_error(response, 409, code="INVALID_STATUS", detail="running")
    assert api.retrieve(SUBSCRIPTIONS, subscription["id"])["attributes"]["status"] == "running"
    assert events_of(committed, destroyed) == []


def test_the_first_failure_is_told_with_the_time_of_its_retry(api, shop, committed, gateways):
    """A dunning subscription's renewal declined softly: ``last_run_failed`` delivers the
    subscription, active, with ``next_attempt_at`` when the retry runs."""
    card = api.create(
        "customer_payment_sources",
        {
            "payment_source_token": "tok_insufficient_funds",
            "name": "Low",
            "expires_on": "2099-12-31",
        },
        {"customer": ("customers", shop.customer["id"])},
    )
    subscription = api.create(
        SUBSCRIPTIONS,
        {
            "frequency": "monthly",
            "failure_policy": {"retry_after_seconds": [86400], "final_action": "deactivate"},
        },
        {
            "source_order": ("orders", shop.order["id"]),
            "customer_payment_source": ("customer_payment_sources", card["id"]),
        },
    )
    with running_receiver("unused", behaviour=Answer(204)) as receiver:
        created = hook(api, topics.LAST_RUN_FAILED, f"{receiver.url}/hooks")
        receiver.secret = created["attributes"]["shared_secret"]
        with unit_of_work(committed, Published()) as s:
            [copy_id] = renewals.tick(s, utcnow() + timedelta(days=40), batch_size=10).copies
        assert run(committed, gateways, copy_id) == Outcome.FAILED

        assert deliver_webhooks() == {"delivered": 1}

    [request] = receiver.requests
    assert request.signature_matched
    sent = json.loads(request.body)["data"]
    assert sent["id"] == subscription["id"]
    assert sent["attributes"]["status"] == "active"
    assert sent["attributes"]["succeeded_on_last_run"] is False
    with committed.begin() as s:
        retry_at = s.get_one(WebhookEvent, request.headers["x-ordercopy-event-id"]).created_at
    waited = datetime.fromisoformat(sent["attributes"]["next_attempt_at"]) - retry_at
    assert abs(waited - timedelta(days=1)) < timedelta(seconds=5)


# --- orders ----------------------------------------------------------------------------


def test_placing_and_cancelling_an_order_owe_one_event_each(api, committed):
    ids = hooks(api, topics.ORDER_PLACE, topics.ORDER_CANCEL)
    shop = build_shop(api, place=False)
    assert owed(committed) == Counter()

    placed = trigger(api, "orders", shop.order["id"], "_place")
    assert placed["attributes"]["status"] == "placed"
    assert owed(committed) == Counter(
        {(ids[topics.ORDER_PLACE], topics.ORDER_PLACE, shop.order["id"]): 1}
    )

    cancelled = trigger(api, "orders", shop.order["id"], "_cancel")
    assert cancelled["attributes"]["status"] == "cancelled"
    # Refused now (cancelled): a second _place or _cancel owes nothing.
    assert_error(api.update("orders", shop.order["id"], {"_place": True}), 422)
    assert_error(api.update("orders", shop.order["id"], {"_cancel": True}), 422)
    assert owed(committed) == Counter(
        {
            (ids[topics.ORDER_PLACE], topics.ORDER_PLACE, shop.order["id"]): 1,
            (ids[topics.ORDER_CANCEL], topics.ORDER_CANCEL, shop.order["id"]): 1,
        }
    )


def test_a_declined_place_owes_nothing(api, committed):
    hooks(api, topics.ORDER_PLACE, topics.ORDER_CANCEL)
    shop = build_shop(api, token="tok_declined", place=False)

    response = api.update("orders", shop.order["id"], {"_place": True})

    assert_error(response, 422, pointer="/data/attributes/_place", detail="declined")
    assert owed(committed) == Counter()


# --- order copies ------------------------------------------------------------------------


def test_deleting_a_copy_owes_its_destroy_event_with_its_document(api, shop, committed):
    with_source = hook(api, topics.DESTROY, include_resources=["source_order"])["id"]
    bare = hook(api, topics.DESTROY)["id"]
    copy = create_copy(api, shop.order["id"], reference="to-go")
    with_includes = api.get(f"/api/order_copies/{copy['id']}", include="source_order").json()
    plain = api.get(f"/api/order_copies/{copy['id']}").json()

    assert api.delete(f"/api/order_copies/{copy['id']}").status_code == 204

    assert owed(committed) == Counter(
        {(with_source, topics.DESTROY, copy["id"]): 1, (bare, topics.DESTROY, copy["id"]): 1}
    )
    stored = payload_of(committed, with_source)
    assert stored == with_includes
    assert (stored["data"]["type"], stored["data"]["id"]) == ("order_copies", copy["id"])
    assert stored["data"]["attributes"]["reference"] == "to-go"
    assert [(i["type"], i["id"]) for i in stored["included"]] == [("orders", shop.order["id"])]
    assert payload_of(committed, bare) == plain
    assert "included" not in plain
    assert_error(api.delete(f"/api/order_copies/{copy['id']}"), 404)
    assert sum(owed(committed).values()) == 2


def test_a_destroy_event_is_delivered_with_its_stored_document_signed(api, shop, committed):
    with running_receiver("unused", behaviour=Answer(204)) as receiver:
        created = hook(
            api, topics.DESTROY, f"{receiver.url}/hooks", include_resources=["source_order"]
        )
        receiver.secret = created["attributes"]["shared_secret"]
        copy = create_copy(api, shop.order["id"])
        document = api.get(f"/api/order_copies/{copy['id']}", include="source_order").json()
        assert api.delete(f"/api/order_copies/{copy['id']}").status_code == 204

        assert deliver_webhooks() == {"delivered": 1}

    [request] = receiver.requests
    [event] = events_of(committed, created["id"])
    assert request.signature_matched
    assert request.headers[SIGNATURE_HEADER.lower()] == signature(receiver.secret, request.body)
    assert request.headers["x-commercelayer-topic"] == topics.DESTROY
    assert request.headers["x-ordercopy-event-id"] == event.id
    assert json.loads(request.body) == document == event.payload
    assert (event.status, event.attempts) == (EventStatus.DELIVERED, 1)
    [callback] = callbacks_of(committed, created["id"])
    assert (callback.response_code, callback.payload) == (204, document)


@pytest.mark.parametrize("topic", [topics.CREATE, topics.COMPLETE])
def test_an_event_of_a_copy_deleted_before_it_was_sent_fails_at_once_circuit_untouched(
    api, shop, committed, gateways, topic
):
    with running_receiver("unused", behaviour=Answer(204)) as receiver:
        webhook_id = hook(api, topic, f"{receiver.url}/hooks")["id"]
        copy = create_copy(api, shop.order["id"])
        if topic == topics.COMPLETE:
            assert run(committed, gateways, copy["id"]) == Outcome.COMPLETED
        assert api.delete(f"/api/order_copies/{copy['id']}").status_code == 204

        assert deliver_webhooks() == {"failed": 1}
        assert deliver_webhooks() == {}  # failed for good: not tried again

    assert receiver.requests == []
    [event] = events_of(committed, webhook_id)
    assert (event.topic, event.resource_id, event.status) == (
        topic,
        copy["id"],
        EventStatus.FAILED,
    )
    [callback] = callbacks_of(committed, webhook_id)
    assert callback.event_id == event.id
    assert callback.response_code is None
    assert copy["id"] in (callback.response_message or "")
    assert circuit_failures(committed, webhook_id) == 0
    webhook = api.retrieve("webhooks", webhook_id)["attributes"]
    assert (webhook["circuit_state"], webhook["circuit_failure_count"]) == ("closed", 0)
