"""Delivering webhook events to a real receiver: signed, recorded, retried, circuit-broken."""

from __future__ import annotations

import json
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from datetime import timedelta
from unittest import mock

import pytest
from sqlalchemy import select, update

from config import get_settings
from copying import circuits
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
            committed, receiver.url, circuit_failure_count=circuits.CIRCUIT_AFTER - 1
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


def test_deliverers_together_hold_at_most_two_events_of_one_webhook(committed):
    """Two deliverers at once, each seeing events of the same webhook the other does not
    (rows another holds are skipped): the second waits for the first's take (the
    webhook's row locked), then counts what the first holds. Without that it would take
    two more, three held in all."""
    busy = listen(committed, "https://receiver.example/hooks")
    for _ in range(5):
        copy_created(committed)
    now = utcnow()
    with committed.begin() as first:
        # A batch of one: it reads two events, locks both, takes one.
        taken_first = delivery.take_due(first, now, limit=1, hold=HOLD)
        with ThreadPoolExecutor(1) as pool:
            second = pool.submit(_take_in_own_transaction, committed, now)
            with pytest.raises(FuturesTimeout):  # waits for the first to commit
                second.result(timeout=0.5)
            first.commit()
            taken_second = second.result(timeout=30)
    with committed.begin() as s:
        third = delivery.take_due(s, now, limit=10, hold=HOLD)

    assert [d.webhook_id for d in taken_first.due + taken_second.due] == [busy, busy]
    assert third.due == []  # two held: none more until one is answered
    assert third.more is False  # no next tick at once: those holding come back for the rest
    with committed.begin() as s:
        delivery.record_answer(
            s,
            taken_first.due[0],
            payload={},
            response_code=200,
            message="",
            delivered=True,
            now=now,
        )
    with committed.begin() as s:
        fourth = delivery.take_due(s, now, limit=10, hold=HOLD)
    assert len(fourth.due) == 1  # one answered: one more may go


def _take_in_own_transaction(sessions, now) -> delivery.Taken:
    with sessions.begin() as s:
        return delivery.take_due(s, now, limit=10, hold=HOLD)


def test_an_event_held_past_its_hold_is_taken_again_and_counts_no_more(committed):
    """A deliverer that died holding events does not keep its webhook's share: once the
    hold runs out the events are due again and may be taken."""
    listen(committed, "https://receiver.example/hooks")
    for _ in range(2):
        copy_created(committed)
    now = utcnow()
    with committed.begin() as s:
        died = delivery.take_due(s, now, limit=10, hold=timedelta(seconds=30))
    with committed.begin() as s:
        assert delivery.take_due(s, now + timedelta(seconds=29), limit=10, hold=HOLD).due == []
    with committed.begin() as s:
        again = delivery.take_due(s, now + timedelta(seconds=31), limit=10, hold=HOLD)

    assert sorted(d.event_id for d in again.due) == sorted(d.event_id for d in died.due)
    assert [d.attempt for d in again.due] == [2, 2]


HOLD = timedelta(seconds=30)
