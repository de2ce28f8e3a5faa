"""The chaos run's webhook promises (tests/chaos/webhooks.py) catch what they name, and
its receiver fails at random as seeded, checking signatures."""

from __future__ import annotations

import random

import httpx2
from sqlalchemy import delete, select, update

from copying.copies import history
from copying.copies.history import EventKind
from copying.orders import placing
from copying.webhooks import topics
from copying.webhooks.signing import SIGNATURE_HEADER, signature
from models import EventStatus, Mode, WebhookEvent
from tests.chaos.webhooks import (
    SECRET,
    WEBHOOK_INVARIANTS,
    Received,
    check_webhooks,
    running,
    subscribe,
)
from tests.factories import create_copy, make_shop


def subscribed_copy(sessions):
    """A copy created while every topic has a webhook, and its one event."""
    with sessions.begin() as s:
        subscribe(s, "http://127.0.0.1:9/hook")
        shop = make_shop(s)
    copy = create_copy(sessions, shop.source.id)
    with sessions.begin() as s:
        [event_id] = s.scalars(select(WebhookEvent.id).where(WebhookEvent.resource_id == copy.id))
    return copy.id, event_id


def delivered(sessions, event_id, topic=topics.CREATE, signed=True):
    with sessions.begin() as s:
        s.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == event_id)
            .values(status=EventStatus.DELIVERED)
        )
    return [Received(event_id, topic, signature_matched=signed, answered=200)]


def test_a_created_copy_whose_event_was_delivered_signed_keeps_both_promises(sessions):
    _copy_id, event_id = subscribed_copy(sessions)
    received = delivered(sessions, event_id)
    with sessions.begin() as s:
        found = check_webhooks(s, received)
    assert found == {name: [] for name in WEBHOOK_INVARIANTS}


def test_an_event_missing_or_written_twice_is_caught(sessions):
    copy_id, event_id = subscribed_copy(sessions)
    with sessions.begin() as s:
        event = s.get_one(WebhookEvent, event_id)
        s.add(
            WebhookEvent(
                id="a-second-event",
                mode=event.mode,
                webhook_id=event.webhook_id,
                topic=event.topic,
                resource_type=event.resource_type,
                resource_id=event.resource_id,
                next_attempt_at=event.next_attempt_at,
            )
        )
        s.flush()
        found = check_webhooks(s, [])
        assert found["one_event_per_change"] == [
            f"copy {copy_id}: 1 order_copies.create owed, 2 written"
        ]
        s.execute(delete(WebhookEvent).where(WebhookEvent.resource_id == copy_id))
        found = check_webhooks(s, [])
    assert found["one_event_per_change"] == [
        f"copy {copy_id}: 1 order_copies.create owed, 0 written"
    ]
    with sessions.begin() as s:
        history.record(s, copy_id, Mode.TEST, 1, EventKind.CLAIMED, claims=1)
        found = check_webhooks(s, [])
    assert found["one_event_per_change"] == [
        f"copy {copy_id}: 1 order_copies.create owed, 0 written",
        f"copy {copy_id}: 1 order_copies.start owed, 0 written",
    ]


def test_a_claim_after_the_first_owes_no_event(sessions):
    copy_id, event_id = subscribed_copy(sessions)
    received = delivered(sessions, event_id)
    with sessions.begin() as s:
        history.record(s, copy_id, Mode.TEST, 2, EventKind.CLAIMED, claims=2)
        found = check_webhooks(s, received)
    assert found["one_event_per_change"] == []


def test_an_event_pending_unsigned_or_unknown_is_caught(sessions):
    _copy_id, event_id = subscribed_copy(sessions)
    with sessions.begin() as s:
        found = check_webhooks(s, [])
    assert found["events_delivered"] == [
        f"event {event_id} (order_copies.create) is pending after 0 attempts",
        f"event {event_id} (order_copies.create): the receiver never got it signed",
    ]
    received = delivered(sessions, event_id, signed=False)
    received.append(Received("nobody-wrote-this", topics.CREATE, True, 200))
    with sessions.begin() as s:
        found = check_webhooks(s, received)
    assert found["events_delivered"] == [
        f"event {event_id} (order_copies.create): the receiver never got it signed",
        "the receiver got event id 'nobody-wrote-this', which the database does not hold",
    ]
    received = delivered(sessions, event_id, topic=topics.START)
    with sessions.begin() as s:
        found = check_webhooks(s, received)
    assert found["events_delivered"] == [
        f"event {event_id} (order_copies.create) arrived as ['order_copies.start']"
    ]
    assert found["one_event_per_change"] == []


def test_the_receiver_answers_500_at_random_and_checks_signatures():
    body = b'{"data":{}}'
    with running(random.Random(7)) as receiver, httpx2.Client(timeout=5) as client:
        answers = [
            client.post(
                receiver.url,
                content=body,
                headers={
                    "X-Ordercopy-Event-Id": f"e{n}",
                    "X-CommerceLayer-Topic": topics.CREATE,
                    SIGNATURE_HEADER: signature(SECRET if n % 2 else "wrong", body),
                },
            ).status_code
            for n in range(40)
        ]
    assert set(answers) == {200, 500}
    assert sorted(r.answered for r in receiver.received) == sorted(answers)
    assert [r.signature_matched for r in receiver.received] == [n % 2 == 1 for n in range(40)]
    assert {r.event_id for r in receiver.received} == {f"e{n}" for n in range(40)}


def test_an_order_placed_and_cancelled_after_the_webhooks_were_made_owes_one_event_each(
    sessions, gateways
):
    with sessions.begin() as s:
        subscribe(s, "http://127.0.0.1:9/hook")
        shop = make_shop(s)
    assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    assert placing.cancel_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:
        assert check_webhooks(s, [])["one_event_per_change"] == []
        s.execute(delete(WebhookEvent).where(WebhookEvent.topic == topics.ORDER_CANCEL))
        found = check_webhooks(s, [])
    assert found["one_event_per_change"] == [
        f"order {shop.source.id}: 1 orders.cancel owed, 0 written"
    ]
