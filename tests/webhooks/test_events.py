"""Events are written by the state change that causes them, once per listening webhook."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import lookups
from copying.copies import lifecycle
from copying.runs import Outcome, execute
from copying.subscriptions import renewals
from copying.testing import failpoints
from copying.webhooks import events, topics
from models import Mode, OrderCopy, Webhook, WebhookEvent, db, utcnow
from tests.copying.clock import FixedClock
from tests.factories import create_copy, make_shop, make_subscription
from tests.runs import execute_one


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


def listen(sessions, topic: str, *, mode: Mode = Mode.TEST, disabled: bool = False) -> str:
    with sessions.begin() as s:
        webhook = Webhook(
            mode=mode,
            topic=topic,
            callback_url="https://receiver.example/hooks",
            shared_secret="secret",
            disabled_at=datetime(2030, 1, 1, tzinfo=FixedClock().now.tzinfo) if disabled else None,
        )
        s.add(webhook)
        s.flush()
        return webhook.id


def owed(sessions) -> Counter[tuple[str, str, str]]:
    """(webhook, topic, copy) of every event written."""
    with sessions.begin() as s:
        rows = s.execute(
            select(WebhookEvent.webhook_id, WebhookEvent.topic, WebhookEvent.resource_id)
        ).all()
    return Counter((w, t, r) for w, t, r in rows)


def test_creating_a_copy_owes_its_create_event_to_each_listening_webhook_of_its_mode(
    sessions,
):
    first, second = listen(sessions, topics.CREATE), listen(sessions, topics.CREATE)
    listen(sessions, topics.CREATE, mode=Mode.LIVE)
    listen(sessions, topics.CREATE, disabled=True)
    listen(sessions, topics.COMPLETE)
    with sessions.begin() as s:
        shop = make_shop(s)
    copy = create_copy(sessions, shop.source.id)

    assert owed(sessions) == Counter(
        {(first, topics.CREATE, copy.id): 1, (second, topics.CREATE, copy.id): 1}
    )
    with sessions.begin() as s:
        event = s.scalars(select(WebhookEvent)).first()
        assert event is not None
        assert (event.resource_type, event.status, event.attempts, event.mode) == (
            "order_copies",
            "pending",
            0,
            Mode.TEST,
        )
        assert len(event.id) == 36  # a UUID: the id receivers dedupe on


def test_a_chunk_owes_one_start_and_one_end_event_per_copy(sessions, gateways):
    hooks = {
        topic: listen(sessions, topic) for topic in (topics.START, topics.COMPLETE, topics.FAIL)
    }
    with sessions.begin() as s:
        shops = [make_shop(s) for _ in range(20)] + [make_shop(s, token="tok_declined")]
    ids = [create_copy(sessions, shop.source.id, place_target_order=True).id for shop in shops]

    ran = execute(sessions, ids, gateways=gateways, clock=FixedClock())

    assert ran.outcome == {**dict.fromkeys(ids[:20], Outcome.COMPLETED), ids[20]: Outcome.FAILED}
    assert owed(sessions) == Counter(
        {
            **{(hooks[topics.START], topics.START, i): 1 for i in ids},
            **{(hooks[topics.COMPLETE], topics.COMPLETE, i): 1 for i in ids[:20]},
            (hooks[topics.FAIL], topics.FAIL, ids[20]): 1,
        }
    )


def test_a_run_rescued_after_a_crash_does_not_start_the_copy_again(sessions, gateways, clock):
    started = listen(sessions, topics.START)
    with sessions.begin() as s:
        shop = make_shop(s)
    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    with failpoints.enabled("after_build"):
        assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.CRASHED
    clock.advance(60)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    assert owed(sessions) == Counter({(started, topics.START, copy.id): 1})


def test_a_retried_copy_starts_again_and_an_aborted_one_says_so(sessions, gateways, clock):
    started, aborted = listen(sessions, topics.START), listen(sessions, topics.ABORT)
    with sessions.begin() as s:
        shop = make_shop(s, token="tok_declined")
        other = make_shop(s)
    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED
    with sessions.begin() as s:
        lifecycle.retry(s, copy.id, Mode.TEST, by="test", now=clock.now)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED
    pending = create_copy(sessions, other.source.id)
    with sessions.begin() as s:
        lifecycle.abort(s, pending.id, Mode.TEST, by="test", now=clock.now)

    assert owed(sessions) == Counter(
        {(started, topics.START, copy.id): 2, (aborted, topics.ABORT, pending.id): 1}
    )


def test_on_sqlite_the_same_events_are_owed(sqlite):
    sessions, gateways = sqlite
    hooks = {
        topic: listen(sessions, topic) for topic in (topics.CREATE, topics.START, topics.COMPLETE)
    }
    with sessions.begin() as s:
        shops = [make_shop(s) for _ in range(3)]
    ids = [create_copy(sessions, shop.source.id, place_target_order=True).id for shop in shops]

    ran = execute(sessions, ids, gateways=gateways, clock=FixedClock())

    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
    assert owed(sessions) == Counter(
        {(hooks[t], t, i): 1 for t in (topics.CREATE, topics.START, topics.COMPLETE) for i in ids}
    )


def test_a_webhook_being_updated_does_not_hold_up_the_events_written_for_it(committed):
    """The API's update locks the row FOR NO KEY UPDATE: an event referring to the webhook
    (a KEY SHARE lock on it) is still written meanwhile, not after the update."""
    webhook_id = listen(committed, topics.CREATE)
    with committed.begin() as updating:
        lookups.load(
            updating, Webhook, "webhooks", webhook_id, Mode.TEST, lock=True, keeping_key=True
        )
        with db.engine().connect() as other, other.begin():
            other.exec_driver_sql("SET LOCAL lock_timeout = '2s'")  # a wait fails the test
            events.record(
                Session(bind=other),
                [events.Change("cOpyId0001", Mode.TEST, topics.CREATE)],
                utcnow(),
            )
    assert owed(committed) == Counter({(webhook_id, topics.CREATE, "cOpyId0001"): 1})


def test_a_renewal_queued_by_the_tick_owes_its_recurring_create_event(sessions):
    """Commerce Layer's topics: a renewal is a recurring order copy, not an order copy."""
    listen(sessions, topics.CREATE)
    created = listen(sessions, RENEWAL_CREATE)
    with sessions.begin() as s:
        shop = make_shop(s)
        subscription = make_subscription(s, shop.source, starts_at=FixedClock().now)
    now = FixedClock().now + timedelta(minutes=1)
    with sessions.begin() as s:
        [copy_id] = renewals.tick(s, now, batch_size=10).copies

    assert owed(sessions) == Counter({(created, RENEWAL_CREATE, copy_id): 1})
    with sessions.begin() as s:
        assert s.get_one(OrderCopy, copy_id).order_subscription_id == subscription.id


RENEWAL_CREATE = topics.of_copy(topics.CREATE, "recurring_order_copies")


def test_a_renewal_starts_completes_and_aborts_under_its_recurring_topics(sessions, gateways):
    """Every copy topic of a renewal, on the claim statement's path and the finish's."""
    recurring = {
        topic: listen(sessions, topics.of_copy(topic, "recurring_order_copies"))
        for topic in (topics.START, topics.COMPLETE, topics.ABORT)
    }
    for topic in (topics.START, topics.COMPLETE, topics.ABORT):
        listen(sessions, topic)  # order copies' own: a renewal owes them nothing
    with sessions.begin() as s:
        shop = make_shop(s)
        other = make_shop(s)
        make_subscription(s, shop.source, starts_at=FixedClock().now)
        make_subscription(s, other.source, starts_at=FixedClock().now)
    now = FixedClock().now + timedelta(minutes=1)
    with sessions.begin() as s:
        ran_id, aborted_id = renewals.tick(s, now, batch_size=10).copies
    with sessions.begin() as s:
        lifecycle.abort(s, aborted_id, Mode.TEST, by="test", now=now)

    assert execute_one(sessions, ran_id, gateways=gateways, clock=FixedClock(now)) == (
        Outcome.COMPLETED
    )
    name = "recurring_order_copies"
    assert owed(sessions) == Counter(
        {
            (recurring[topics.START], topics.of_copy(topics.START, name), ran_id): 1,
            (recurring[topics.COMPLETE], topics.of_copy(topics.COMPLETE, name), ran_id): 1,
            (recurring[topics.ABORT], topics.of_copy(topics.ABORT, name), aborted_id): 1,
        }
    )


def test_renewals_of_one_subscription_completing_together_owe_one_event_each(sessions, gateways):
    """A subscription catching up renews three periods; their copies end in one chunk:
    three renewals counted, three ``last_run_succeeded`` events (found by the chaos run:
    one was written for the three)."""
    succeeded = listen(sessions, topics.LAST_RUN_SUCCEEDED)
    with sessions.begin() as s:
        shop = make_shop(s, stock=100)
        subscription = make_subscription(
            s, shop.source, frequency="daily", starts_at=FixedClock().now, catch_up=True
        )
    now = FixedClock().now + timedelta(days=2, minutes=1)
    with sessions.begin() as s:
        copy_ids = renewals.tick(s, now, batch_size=10).copies
    assert len(copy_ids) == 3

    ran = execute(sessions, copy_ids, gateways=gateways, clock=FixedClock(now))

    assert set(ran.outcome.values()) == {Outcome.COMPLETED}
    assert owed(sessions) == Counter({(succeeded, topics.LAST_RUN_SUCCEEDED, subscription.id): 3})
