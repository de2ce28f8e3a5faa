"""Webhooks end to end: a real worker runs a copy, its beat's ticks deliver the events."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.copies.options import CopyOptions
from copying.webhooks import topics
from models import EventStatus, Mode, Webhook, WebhookEvent
from tests.factories import make_shop
from tests.webhooks.receiver import Answer, Hang, running_receiver
from tests.worker.processes import WorkerProcess, flush_broker, wait_for
from worker.publisher import publish

pytestmark = [pytest.mark.slow, pytest.mark.worker]

SECRET = "end-to-end"


@pytest.mark.xdist_group("worker-processes")
def test_a_copy_run_by_a_worker_sends_its_events_to_the_receiver(committed, tmp_path):
    flush_broker()
    with running_receiver(SECRET, behaviour=Answer(200)) as receiver:
        with committed.begin() as s:
            shop = make_shop(s)
            for topic in (topics.CREATE, topics.START, topics.COMPLETE):
                s.add(
                    Webhook(
                        mode=Mode.TEST,
                        topic=topic,
                        callback_url=f"{receiver.url}/{topic}",
                        shared_secret=SECRET,
                    )
                )
        with unit_of_work(committed, publish) as s:
            copy_id = lifecycle.create(
                s,
                mode=Mode.TEST,
                source_order_id=shop.source.id,
                options=CopyOptions(place_target_order=True),
            ).id

        worker = WorkerProcess(
            tmp_path,
            "webhooks",
            beat=True,
            webhooks_allow_private="true",
            webhooks_poll_seconds=0.2,
        )
        try:
            receiver.wait_until_answered(3, timeout=60)
        finally:
            worker.stop()

    by_path = {r.path: r for r in receiver.requests}
    assert sorted(by_path) == sorted(
        f"/{t}" for t in (topics.CREATE, topics.START, topics.COMPLETE)
    )
    assert all(r.signature_matched for r in receiver.requests)
    completed = json.loads(by_path[f"/{topics.COMPLETE}"].body)["data"]
    assert (completed["id"], completed["attributes"]["status"]) == (copy_id, "completed")
    started = by_path[f"/{topics.START}"].headers["x-commercelayer-topic"]
    assert started == topics.START


@pytest.mark.xdist_group("worker-processes")
def test_a_worker_killed_mid_delivery_leaves_the_event_to_be_sent_again(committed, tmp_path):
    """SIGKILL while the receiver holds the request: once the event's hold runs out, the
    next worker sends it again, under the same event id, and records it delivered."""
    flush_broker()
    settings = {
        "webhooks_allow_private": "true",
        "webhooks_poll_seconds": 0.2,
        "webhooks_timeout_seconds": 1,
    }
    with running_receiver(SECRET, behaviour=Hang(3)) as receiver:
        with committed.begin() as s:
            shop = make_shop(s)
            s.add(
                Webhook(
                    mode=Mode.TEST,
                    topic=topics.CREATE,
                    callback_url=receiver.url,
                    shared_secret=SECRET,
                )
            )
        with unit_of_work(committed, publish) as s:
            copy_id = lifecycle.create(s, mode=Mode.TEST, source_order_id=shop.source.id).id

        first = WorkerProcess(tmp_path, "doomed", beat=True, **settings)
        try:
            wait_for(lambda: len(receiver.requests) == 1, 60, "the first delivery to arrive")
        finally:
            first.stop()  # SIGKILL, the request still out
        receiver.behaviour = Answer(200)
        second = WorkerProcess(tmp_path, "rescuer", beat=True, **settings)
        try:
            receiver.wait_until_answered(2, timeout=60)
            wait_for(lambda: _delivered(committed), 30, "the event recorded delivered")
        finally:
            second.stop()

    ids = {r.headers["x-ordercopy-event-id"] for r in receiver.requests}
    assert len(receiver.requests) == 2
    assert len(ids) == 1
    assert json.loads(receiver.requests[1].body)["data"]["id"] == copy_id
    with committed.begin() as s:
        [event] = s.scalars(select(WebhookEvent)).all()
        assert (event.id, event.status, event.attempts) == (ids.pop(), EventStatus.DELIVERED, 2)


def _delivered(sessions) -> bool:
    with sessions.begin() as s:
        return s.scalar(select(WebhookEvent.status)) == EventStatus.DELIVERED


@pytest.mark.xdist_group("worker-processes")
def test_after_the_broker_is_flushed_every_event_is_still_delivered(committed, tmp_path):
    """Redis flushed while ticks are queued and deliveries under way (the receiver slow):
    the events are rows, so the beat's next ticks take what was left, and each event
    reaches the receiver, at least once, and is recorded delivered."""
    flush_broker()
    settings = {
        "webhooks_allow_private": "true",
        "webhooks_poll_seconds": 0.2,
        "webhooks_timeout_seconds": 2,
    }
    with running_receiver(SECRET, behaviour=Hang(0.3)) as receiver:
        with committed.begin() as s:
            shops = [make_shop(s) for _ in range(12)]
            for path in ("a", "b", "c"):
                s.add(
                    Webhook(
                        mode=Mode.TEST,
                        topic=topics.CREATE,
                        callback_url=f"{receiver.url}/{path}",
                        shared_secret=SECRET,
                    )
                )
        for shop in shops:
            with unit_of_work(committed, publish) as s:
                lifecycle.create(s, mode=Mode.TEST, source_order_id=shop.source.id)
        worker = WorkerProcess(tmp_path, "flushed", beat=True, **settings)
        try:
            wait_for(lambda: len(receiver.requests) >= 3, 60, "the first deliveries")
            flush_broker()  # queued ticks, unacknowledged ones and copies' messages gone
            wait_for(lambda: _pending(committed) == 0, 90, "every event delivered")
        finally:
            worker.stop()

    with committed.begin() as s:
        events = s.execute(select(WebhookEvent.id, WebhookEvent.status)).all()
    received = {r.headers["x-ordercopy-event-id"] for r in receiver.requests}
    assert len(events) == 36
    assert {status for _, status in events} == {EventStatus.DELIVERED}
    assert received == {event_id for event_id, _ in events}


def _pending(sessions) -> int:
    with sessions.begin() as s:
        return len(
            s.scalars(
                select(WebhookEvent.id).where(WebhookEvent.status != EventStatus.DELIVERED)
            ).all()
        )
