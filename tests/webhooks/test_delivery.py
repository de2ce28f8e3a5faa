"""Delivering webhook events to a real receiver: signed, recorded, retried, circuit-broken."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import timedelta
from unittest import mock

import pytest
from sqlalchemy import select, update

from config import get_settings
from copying.webhooks import delivery, topics
from copying.webhooks.signing import SIGNATURE_HEADER, signature
from models import (
    CircuitState,
    EventCallback,
    EventStatus,
    Mode,
    Webhook,
    WebhookEvent,
    utcnow,
)
from tasks.webhooks import deliver_webhooks
from tests.factories import create_copy, make_shop
from tests.webhooks.receiver import Answer, Hang, running_receiver

SECRET = "s3cret"


@pytest.fixture(autouse=True)
def private_receivers_allowed(settings_env: dict[str, str]) -> None:
    """The receivers here listen on loopback; the timeout is short so that a hang costs
    little."""
    settings_env.update(
        ORDERCOPY_WEBHOOKS_ALLOW_PRIVATE="true", ORDERCOPY_WEBHOOKS_TIMEOUT_SECONDS="1"
    )
    get_settings.cache_clear()


def listen(sessions, url: str, topic: str = topics.CREATE, **columns) -> str:
    with sessions.begin() as s:
        webhook = Webhook(
            mode=Mode.TEST,
            topic=topic,
            callback_url=url,
            shared_secret=SECRET,
            include_resources=columns.pop("include_resources", []),
            **columns,
        )
        s.add(webhook)
        s.flush()
        return webhook.id


def copy_created(sessions) -> str:
    with sessions.begin() as s:
        shop = make_shop(s)
    return create_copy(sessions, shop.source.id, reference="from-the-test").id


def event_of(sessions, webhook_id: str) -> WebhookEvent:
    with sessions.begin() as s:
        event = s.scalars(select(WebhookEvent).where(WebhookEvent.webhook_id == webhook_id)).one()
        s.expunge(event)
        return event


def callbacks_of(sessions, webhook_id: str) -> list[EventCallback]:
    with sessions.begin() as s:
        rows = s.scalars(
            select(EventCallback)
            .where(EventCallback.webhook_id == webhook_id)
            .order_by(EventCallback.created_at)
        ).all()
        for row in rows:
            s.expunge(row)
        return list(rows)


def test_an_event_is_delivered_signed_with_the_resource_as_get_answers_it(committed):
    with running_receiver(SECRET, behaviour=Answer(204)) as receiver:
        webhook_id = listen(committed, f"{receiver.url}/hooks", include_resources=["source_order"])
        copy_id = copy_created(committed)

        assert deliver_webhooks() == {"delivered": 1}

    [request] = receiver.requests
    event = event_of(committed, webhook_id)
    assert request.signature_matched
    assert request.headers[SIGNATURE_HEADER.lower()] == signature(SECRET, request.body)
    assert request.headers["x-commercelayer-topic"] == topics.CREATE
    assert request.headers["x-ordercopy-event-id"] == event.id
    assert request.headers["content-type"] == "application/vnd.api+json"
    document = json.loads(request.body)
    assert (document["data"]["type"], document["data"]["id"]) == ("order_copies", copy_id)
    assert document["data"]["attributes"]["reference"] == "from-the-test"
    assert [i["type"] for i in document["included"]] == ["orders"]
    assert (event.status, event.attempts, event.delivered_at is not None) == (
        EventStatus.DELIVERED,
        1,
        True,
    )
    [callback] = callbacks_of(committed, webhook_id)
    assert (callback.response_code, callback.event_id) == (204, event.id)
    assert callback.payload == document
    assert deliver_webhooks() == {}  # delivered once, not again


def test_a_failed_delivery_is_recorded_and_tried_again_after_a_backoff(committed):
    with running_receiver(SECRET, behaviour=Answer(500, b"boom")) as receiver:
        webhook_id = listen(committed, receiver.url)
        copy_created(committed)
        before = utcnow()

        assert deliver_webhooks() == {"failed": 1}
        assert deliver_webhooks() == {}  # not due yet

        event = event_of(committed, webhook_id)
        assert (event.status, event.attempts) == (EventStatus.PENDING, 1)
        wait = event.next_attempt_at - before
        assert (
            delivery.BACKOFF_FIRST * 0.8
            <= wait
            <= delivery.BACKOFF_FIRST * 1.2 + timedelta(seconds=5)
        )
        [callback] = callbacks_of(committed, webhook_id)
        assert (callback.response_code, callback.response_message) == (
            500,
            "500 Internal Server Error: boom",
        )
        with committed.begin() as s:
            assert s.get_one(Webhook, webhook_id).circuit_failure_count == 1
            s.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == event.id)
                .values(next_attempt_at=utcnow())
            )
        receiver.behaviour = Answer(200)

        assert deliver_webhooks() == {"delivered": 1}

    assert [r.headers["x-ordercopy-event-id"] for r in receiver.requests] == [event.id] * 2
    assert event_of(committed, webhook_id).status == EventStatus.DELIVERED
    with committed.begin() as s:
        assert s.get_one(Webhook, webhook_id).circuit_failure_count == 0


def test_a_receiver_that_hangs_past_the_timeout_is_a_failed_attempt(committed):
    with running_receiver(SECRET, behaviour=Hang(30)) as receiver:
        webhook_id = listen(committed, receiver.url)
        copy_created(committed)

        assert deliver_webhooks() == {"failed": 1}

    [callback] = callbacks_of(committed, webhook_id)
    assert callback.response_code is None
    assert "timed out" in (callback.response_message or "")


def test_after_enough_failures_in_a_row_the_circuit_opens_and_events_wait(committed):
    with running_receiver(SECRET, behaviour=Answer(503)) as receiver:
        webhook_id = listen(
            committed, receiver.url, circuit_failure_count=delivery.CIRCUIT_AFTER - 1
        )
        first, second = copy_created(committed), copy_created(committed)

        # The first failure opens the circuit; the second event, taken with it, fails too.
        assert deliver_webhooks() == {"failed": 2}
        with committed.begin() as s:
            webhook = s.get_one(Webhook, webhook_id)
            assert webhook.circuit_state == CircuitState.OPEN
            s.execute(update(WebhookEvent).values(next_attempt_at=utcnow()))
        assert deliver_webhooks() == {}  # open: nothing is tried, nothing is dropped

    with committed.begin() as s:
        waiting = s.scalars(select(WebhookEvent.resource_id, WebhookEvent.status)).all()
    assert len(receiver.requests) == 2
    assert sorted(waiting) == sorted([first, second])


def test_an_event_that_fails_every_attempt_is_kept_as_failed(committed):
    with running_receiver(SECRET, behaviour=Answer(500)) as receiver:
        webhook_id = listen(committed, receiver.url)
        copy_created(committed)
        with committed.begin() as s:
            s.execute(update(WebhookEvent).values(attempts=delivery.MAX_ATTEMPTS - 1))

        assert deliver_webhooks() == {"failed": 1}

    assert len(receiver.requests) == 1
    event = event_of(committed, webhook_id)
    assert (event.status, event.attempts) == (EventStatus.FAILED, delivery.MAX_ATTEMPTS)


def test_a_tick_takes_at_most_two_events_of_one_webhook_and_sends_the_next_tick(committed):
    with (
        running_receiver(SECRET) as receiver,
        mock.patch.object(deliver_webhooks, "apply_async") as next_tick,
    ):
        busy = listen(committed, receiver.url)
        other = listen(committed, f"{receiver.url}/other")
        for _ in range(4):
            copy_created(committed)

        assert deliver_webhooks() == {"delivered": 4}
        assert Counter(r.path for r in receiver.requests) == {"/": 2, "/other": 2}
        next_tick.assert_called_once_with(queue="webhooks")
        assert deliver_webhooks() == {"delivered": 4}  # the next tick takes the rest
        assert next_tick.call_count == 1  # and leaves none due

    with committed.begin() as s:
        delivered = s.execute(
            select(WebhookEvent.webhook_id).where(WebhookEvent.status == EventStatus.DELIVERED)
        ).scalars()
        counts = {busy: 0, other: 0}
        for webhook_id in delivered:
            counts[webhook_id] += 1
    assert counts == {busy: 4, other: 4}


def test_backoff_doubles_from_a_minute_up_to_eight_hours_with_jitter():
    rng = random.Random(7)
    waits = [delivery.backoff(n, rng=rng) for n in range(1, delivery.MAX_ATTEMPTS + 1)]

    for n, wait in enumerate(waits, start=1):
        expected = min(delivery.BACKOFF_FIRST * 2 ** (n - 1), delivery.BACKOFF_MAX)
        assert expected * 0.8 <= wait <= expected * 1.2
    assert timedelta(hours=12) <= sum(waits, timedelta()) <= timedelta(hours=36)
