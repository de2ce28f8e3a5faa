"""Webhooks in a chaos run: a receiver that fails at random, and the two promises.

The runner subscribes one test-mode webhook to each topic (:func:`subscribe`) once
the world is built (before any worker or web process starts), all pointing at a
:class:`FlakyReceiver` in its own process:
a threaded HTTP server on loopback that answers 500 to about a fifth of the requests
(drawn from the run's seed) and 200 to the others after up to 50 ms. It records each
request's ``X-Ordercopy-Event-Id``, ``X-CommerceLayer-Topic`` and whether its signature
matched the shared secret. At the end, :func:`check_webhooks` compares what the
database says changed (the copies' history; the orders placed and cancelled since the
webhooks were made; the renewals ended and the subscriptions their failure policy
stopped) with the events written (one per change and listening webhook), and the events
with what the receiver saw (each delivered, signed, at least once).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from copying.copies.history import EventKind
from copying.subscriptions.history import EventKind as SubscriptionEventKind
from copying.webhooks import topics
from copying.webhooks.signing import SIGNATURE_HEADER, verify
from models import (
    EventStatus,
    Mode,
    Order,
    OrderCopy,
    OrderCopyEvent,
    OrderSubscription,
    SubscriptionStatus,
    Webhook,
    WebhookEvent,
)
from models.subscriptions import OrderSubscriptionEvent

#: The shared secret of every webhook of the run.
SECRET = "chaos-webhooks-shared-secret"
#: The share of requests answered 500.
FAILURE_RATE = 0.2
#: The longest an answer is held back.
MAX_DELAY_SECONDS = 0.05
MODE = Mode.TEST
#: The copy history events that each cause one event per webhook listening to the topic.
#: A ``claimed`` event counts only when it is the first claim since created or retried.
TOPIC_OF_KIND: dict[str, str] = {
    EventKind.CREATED: topics.CREATE,
    EventKind.CLAIMED: topics.START,
    EventKind.COMPLETED: topics.COMPLETE,
    EventKind.FAILED: topics.FAIL,
    EventKind.ABORTED: topics.ABORT,
}

WEBHOOK_INVARIANTS: dict[str, str] = {
    "one_event_per_change": (
        "every copy, order and subscription state change with a listening webhook wrote"
        " exactly one event"
    ),
    "events_delivered": "every webhook event was delivered at least once, signed, with its topic",
}


@dataclass(frozen=True)
class Received:
    event_id: str
    topic: str
    signature_matched: bool
    answered: int


@dataclass
class FlakyReceiver:
    url: str
    rng: random.Random
    secret: str = SECRET
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> tuple[int, float]:
        """The status to answer and the delay before it: seeded, so one lock for all."""
        with self._lock:
            failed = self.rng.random() < FAILURE_RATE
            return (500 if failed else 200), self.rng.uniform(0, MAX_DELAY_SECONDS)

    def record(self, request: Received) -> None:
        with self._lock:
            self.received.append(request)

    def counts(self) -> dict[str, int]:
        with self._lock:
            received = list(self.received)
        ids = Counter(r.event_id for r in received if r.answered == 200)
        return {
            "webhook requests received": len(received),
            "webhook requests answered 500 at random": sum(r.answered == 500 for r in received),
            "webhook events received answered 200 more than once (at-least-once)": sum(
                1 for n in ids.values() if n > 1
            ),
        }


@contextmanager
def running(rng: random.Random) -> Iterator[FlakyReceiver]:
    """A :class:`FlakyReceiver` on 127.0.0.1 (an ephemeral port) until the block ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.receiver = FlakyReceiver(url=f"http://127.0.0.1:{server.server_address[1]}", rng=rng)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: FlakyReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A deliverer killed mid-request leaves early: that is part of the run."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status, delay = receiver.answer()
        receiver.record(
            Received(
                event_id=self.headers.get("X-Ordercopy-Event-Id", ""),
                topic=self.headers.get("X-CommerceLayer-Topic", ""),
                signature_matched=verify(
                    receiver.secret, body, self.headers.get(SIGNATURE_HEADER, "")
                ),
                answered=status,
            )
        )
        threading.Event().wait(delay)
        self.close_connection = True
        try:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
        except OSError:
            pass  # the deliverer gave up waiting


def subscribe(session: Session, url: str) -> list[str]:
    """One test-mode webhook per topic, posting to ``url`` with :data:`SECRET`; their
    ids. Does not commit."""
    webhooks = [
        Webhook(
            mode=MODE,
            name=f"chaos {topic}",
            topic=topic,
            callback_url=url,
            shared_secret=SECRET,
        )
        for topic in topics.TOPICS
    ]
    session.add_all(webhooks)
    session.flush()
    return [w.id for w in webhooks]


def pending(session: Session) -> int:
    """Webhook events not yet delivered nor given up: 0 once quiet."""
    return (
        session.scalar(
            select(func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.status == EventStatus.PENDING)
        )
        or 0
    )


#: What a resource is called in a broken promise, by type.
NOUNS = {
    "order_copies": "copy",
    "recurring_order_copies": "renewal",
    "orders": "order",
    "order_subscriptions": "subscription",
}

Owed = Counter[tuple[str, str, str]]


def expected_events(session: Session) -> Owed:
    """(resource type, id, topic) → the events owed: one per state change and per webhook
    listening to its topic. The changes, as the database tells them: the copies' history
    (a ``claimed`` counts when it is the first claim since created or retried); orders
    placed and cancelled since the webhooks were made; each renewal copy's end (history)
    on its subscription; reminders and moves to ``pending`` (the subscription's history);
    subscriptions stopped by their failure policy (nothing else moves a subscription in a
    run: it ends ``inactive`` or ``cancelled`` once at most)."""
    listening = Counter(
        session.scalars(
            select(Webhook.topic).where(Webhook.mode == MODE, Webhook.disabled_at.is_(None))
        )
    )
    owed: Owed = Counter()
    for copy_id, kind, data, subscription_id, copy_type in session.execute(
        select(
            OrderCopyEvent.order_copy_id,
            OrderCopyEvent.kind,
            OrderCopyEvent.data,
            OrderCopy.order_subscription_id,
            OrderCopy.copy_type,
        )
        .join(OrderCopy, OrderCopy.id == OrderCopyEvent.order_copy_id)
        .where(OrderCopyEvent.mode == MODE, OrderCopyEvent.kind.in_(list(TOPIC_OF_KIND)))
    ):
        if kind == EventKind.CLAIMED and (data or {}).get("claims") != 1:
            continue
        topic = topics.of_copy(TOPIC_OF_KIND[kind], copy_type)  # a renewal's: recurring_*
        owed[copy_type, copy_id, topic] += listening[topic]
        if subscription_id is not None and kind in RENEWAL_TOPIC_OF_KIND:
            topic = RENEWAL_TOPIC_OF_KIND[kind]
            owed["order_subscriptions", subscription_id, topic] += listening[topic]
    since = session.scalar(select(func.min(Webhook.created_at)).where(Webhook.mode == MODE))
    if since is not None:
        for order_id, placed_at, cancelled_at in session.execute(
            select(Order.id, Order.placed_at, Order.cancelled_at).where(
                Order.mode == MODE,
                or_(Order.placed_at >= since, Order.cancelled_at >= since),
            )
        ):
            if placed_at is not None and placed_at >= since:
                owed["orders", order_id, topics.ORDER_PLACE] += listening[topics.ORDER_PLACE]
            if cancelled_at is not None and cancelled_at >= since:
                owed["orders", order_id, topics.ORDER_CANCEL] += listening[topics.ORDER_CANCEL]
    if since is not None:  # reminders sent and subscriptions parked, from their history
        for subscription_id, kind in session.execute(
            select(OrderSubscriptionEvent.order_subscription_id, OrderSubscriptionEvent.kind).where(
                OrderSubscriptionEvent.mode == MODE,
                OrderSubscriptionEvent.kind.in_(list(HISTORY_TOPIC_OF_KIND)),
                OrderSubscriptionEvent.created_at >= since,
            )
        ):
            topic = HISTORY_TOPIC_OF_KIND[kind]
            owed["order_subscriptions", subscription_id, topic] += listening[topic]
    for subscription_id, status in session.execute(
        select(OrderSubscription.id, OrderSubscription.status).where(
            OrderSubscription.mode == MODE,
            OrderSubscription.status.in_(list(STOPPED_TOPIC_OF_STATUS)),
        )
    ):
        topic = STOPPED_TOPIC_OF_STATUS[status]
        owed["order_subscriptions", subscription_id, topic] += listening[topic]
    return +owed


#: A renewal copy's end, and the topic it owes on its subscription.
RENEWAL_TOPIC_OF_KIND = {
    EventKind.COMPLETED: topics.LAST_RUN_SUCCEEDED,
    EventKind.FAILED: topics.LAST_RUN_FAILED,
}
#: A subscription's history event, and the topic it owed when it was written.
HISTORY_TOPIC_OF_KIND = {
    SubscriptionEventKind.RENEWAL_ALERT: topics.SUBSCRIPTION_RENEWAL,
    SubscriptionEventKind.PENDING: topics.SUBSCRIPTION_PENDING,
}
#: A subscription's status at the end of a run, and the topic that stopping it owed.
STOPPED_TOPIC_OF_STATUS = {
    SubscriptionStatus.INACTIVE: topics.SUBSCRIPTION_DEACTIVATE,
    SubscriptionStatus.CANCELLED: topics.SUBSCRIPTION_CANCEL,
}


def check_webhooks(session: Session, received: Sequence[Received]) -> dict[str, list[str]]:
    """The broken webhook promises by name, from the database and what the receiver saw."""
    found: dict[str, list[str]] = {name: [] for name in WEBHOOK_INVARIANTS}
    owed = expected_events(session)
    written: Owed = Counter(
        {
            (resource_type, resource_id, topic): count
            for resource_type, resource_id, topic, count in session.execute(
                select(
                    WebhookEvent.resource_type,
                    WebhookEvent.resource_id,
                    WebhookEvent.topic,
                    func.count(),
                ).group_by(WebhookEvent.resource_type, WebhookEvent.resource_id, WebhookEvent.topic)
            )
        }
    )
    for resource_type, resource_id, topic in sorted(owed.keys() | written.keys()):
        key = (resource_type, resource_id, topic)
        if owed[key] != written[key]:
            found["one_event_per_change"].append(
                f"{NOUNS[resource_type]} {resource_id}: {owed[key]} {topic} owed,"
                f" {written[key]} written"
            )
    signed: dict[str, set[str]] = {}
    for request in received:
        if request.signature_matched:
            signed.setdefault(request.event_id, set()).add(request.topic)
    events = session.execute(
        select(WebhookEvent.id, WebhookEvent.topic, WebhookEvent.status, WebhookEvent.attempts)
    ).all()
    for event_id, topic, status, attempts in sorted(events):
        if status != EventStatus.DELIVERED:
            found["events_delivered"].append(
                f"event {event_id} ({topic}) is {status} after {attempts} attempts"
            )
        if event_id not in signed:
            found["events_delivered"].append(
                f"event {event_id} ({topic}): the receiver never got it signed"
            )
        elif signed[event_id] != {topic}:
            found["events_delivered"].append(
                f"event {event_id} ({topic}) arrived as {sorted(signed[event_id])}"
            )
    stored = {event_id for event_id, *_ in events}
    for event_id in sorted({r.event_id for r in received} - stored):
        found["events_delivered"].append(
            f"the receiver got event id {event_id!r}, which the database does not hold"
        )
    return found
