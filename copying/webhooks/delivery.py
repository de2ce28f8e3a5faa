"""Delivering webhook events at least once: which are due, and what an attempt's answer
changes.

A deliverer takes the events due (:func:`take_due`: pending, their time come, their
webhook enabled with its circuit closed, at most :data:`PER_WEBHOOK` of one webhook at
a time) and holds each for a while, so that another deliverer leaves it be; a deliverer
that dies leaves it to be taken again when the hold runs out (the same event id, so the
receiver can tell). Each answer is recorded (:func:`record_answer`): a 2xx delivers the
event and closes the webhook's run of failures; anything else is tried again later,
with exponential backoff and jitter, up to :data:`MAX_ATTEMPTS`; after
:data:`~copying.circuits.CIRCUIT_AFTER` failures in a row the webhook's circuit opens
(``copying.circuits``) and its events wait, not dropped, until ``_reset_circuit``. No
HTTP here: the call is the worker's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from copying import circuits
from models import (
    CircuitState,
    EventCallback,
    EventStatus,
    Mode,
    Webhook,
    WebhookEvent,
)

#: Attempts per event: with the backoff below, about a day from the first to the last.
MAX_ATTEMPTS = 10
#: The wait after the first failed attempt (``ORDERCOPY_WEBHOOKS_BACKOFF_SECONDS``); it
#: doubles after each, up to BACKOFF_MAX.
BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=8)
#: Deliveries to one webhook at the same time, from all deliverers together.
PER_WEBHOOK = 2
#: Stored of a receiver's answer.
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class Due:
    """An event taken for delivery, with what the call needs."""

    event_id: str
    webhook_id: str
    mode: Mode
    topic: str
    resource_type: str
    resource_id: str
    callback_url: str
    shared_secret: str
    include_resources: tuple[str, ...]
    attempt: int
    #: The document kept with the event (a ``*.destroy``'s), else None: rendered to send.
    payload: dict[str, Any] | None = None


@dataclass(frozen=True)
class Taken:
    """What a deliverer took, and whether more events were due than it could take (the
    batch full, or a webhook at its cap): then the next deliverer should come at once."""

    due: list[Due]
    more: bool


def take_due(session: Session, now: datetime, *, limit: int, hold: timedelta) -> Taken:
    """Take up to ``limit`` events due, the longest waiting first, each held until
    ``now + hold`` (longer than an attempt may take), its attempt counted. Rows another
    transaction holds are skipped. Does not commit.

    At most PER_WEBHOOK events of one webhook are held at a time, by all deliverers
    together: the webhooks concerned are locked (in id order, so deliverers never
    deadlock) while those already held are counted."""
    rows = session.execute(
        select(WebhookEvent, Webhook)
        .join(Webhook, Webhook.id == WebhookEvent.webhook_id)
        .where(
            WebhookEvent.status == EventStatus.PENDING,
            WebhookEvent.next_attempt_at <= now,
            Webhook.disabled_at.is_(None),
            Webhook.circuit_state == CircuitState.CLOSED,
        )
        .order_by(WebhookEvent.next_attempt_at)
        .limit(limit * PER_WEBHOOK)
        .with_for_update(of=WebhookEvent, skip_locked=True)
    ).all()
    if not rows:
        return Taken([], more=False)
    held = _held(session, sorted({webhook.id for _, webhook in rows}), now)
    taken: list[Due] = []
    for event, webhook in rows:
        if len(taken) == limit or held.get(webhook.id, 0) >= PER_WEBHOOK:
            continue
        held[webhook.id] = held.get(webhook.id, 0) + 1
        taken.append(
            Due(
                event_id=event.id,
                webhook_id=webhook.id,
                mode=event.mode,
                topic=event.topic,
                resource_type=event.resource_type,
                resource_id=event.resource_id,
                callback_url=webhook.callback_url,
                shared_secret=webhook.shared_secret,
                include_resources=tuple(webhook.include_resources),
                attempt=event.attempts + 1,
                payload=event.payload,
            )
        )
    if taken:
        session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_([d.event_id for d in taken]))
            .values(
                next_attempt_at=now + hold,
                taken_until=now + hold,
                attempts=WebhookEvent.attempts + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    # Left due by this deliverer's own batch or caps: the next should come at once. (Left
    # because other deliverers hold their webhook's share: those come back when done.)
    more = bool(taken) and (len(rows) > len(taken) or len(rows) == limit * PER_WEBHOOK)
    return Taken(taken, more=more)


def _held(session: Session, webhook_ids: list[str], now: datetime) -> dict[str, int]:
    """The events of each webhook other deliverers hold now, each webhook locked (until
    this transaction ends: another deliverer counts after this one took its share)."""
    session.execute(
        select(Webhook.id)
        .where(Webhook.id.in_(webhook_ids))
        .order_by(Webhook.id)
        .with_for_update(key_share=True)
    )
    counted = session.execute(
        select(WebhookEvent.webhook_id, func.count())
        .where(
            WebhookEvent.webhook_id.in_(webhook_ids),
            WebhookEvent.taken_until > now,
            WebhookEvent.status == EventStatus.PENDING,
        )
        .group_by(WebhookEvent.webhook_id)
    )
    return {webhook_id: count for webhook_id, count in counted}


def backoff(
    attempt: int, *, first: timedelta = BACKOFF_FIRST, rng: random.Random | None = None
) -> timedelta:
    """The wait after failed attempt ``attempt`` (1-based): doubling from ``first`` up to
    BACKOFF_MAX, with up to a fifth of it as jitter either way (receivers that failed
    together are not all tried again at the same second)."""
    wait: timedelta = min(first * 2 ** (attempt - 1), BACKOFF_MAX)
    jitter: float = (rng or random).uniform(-0.2, 0.2)
    return wait * (1 + jitter)


def record_answer(
    session: Session,
    due: Due,
    *,
    payload: dict[str, object],
    response_code: int | None,
    message: str,
    delivered: bool,
    now: datetime,
    backoff_first: timedelta = BACKOFF_FIRST,
) -> None:
    """Record an attempt (an event callback) and what its answer changes: the event
    delivered, or tried again later (failed for good after MAX_ATTEMPTS); the webhook's
    run of failures ended, or one longer (``copying.circuits``). Does not commit."""
    _record_callback(session, due, payload, response_code, message, now)
    event = WebhookEvent.__table__.c
    if delivered:
        session.execute(
            update(WebhookEvent)
            .where(event.id == due.event_id, event.status == EventStatus.PENDING)
            .values(
                status=EventStatus.DELIVERED, delivered_at=now, taken_until=None, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
        circuits.record_success(session, Webhook, due.webhook_id, now)
        return
    last = due.attempt >= MAX_ATTEMPTS
    session.execute(
        update(WebhookEvent)
        .where(event.id == due.event_id, event.status == EventStatus.PENDING)
        .values(
            status=EventStatus.FAILED if last else EventStatus.PENDING,
            next_attempt_at=now if last else now + backoff(due.attempt, first=backoff_first),
            taken_until=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    circuits.record_failure(session, Webhook, due.webhook_id, now)


def record_gone(session: Session, due: Due, now: datetime) -> None:
    """The event's resource was deleted before it could be sent (its ``*.destroy`` event
    says so): recorded as an attempt not sent, the event failed for good, the webhook's
    circuit untouched (the receiver did nothing wrong). Does not commit."""
    message = f"not sent: {due.resource_type} {due.resource_id} was deleted"
    _record_callback(session, due, {}, None, message, now)
    event = WebhookEvent.__table__.c
    session.execute(
        update(WebhookEvent)
        .where(event.id == due.event_id, event.status == EventStatus.PENDING)
        .values(status=EventStatus.FAILED, taken_until=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _record_callback(
    session: Session,
    due: Due,
    payload: dict[str, object],
    response_code: int | None,
    message: str,
    now: datetime,
) -> None:
    session.add(
        EventCallback(
            mode=due.mode,
            webhook_id=due.webhook_id,
            event_id=due.event_id,
            callback_url=due.callback_url,
            payload=payload,
            response_code=response_code,
            response_message=message[:MAX_MESSAGE],
            created_at=now,
            updated_at=now,
        )
    )
