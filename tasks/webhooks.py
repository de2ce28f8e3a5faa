"""Delivering webhook events: the beat's tick takes the events due and sends them.

The tick runs every ``ORDERCOPY_WEBHOOKS_POLL_SECONDS`` on its own queue (``webhooks``),
consumed by its own worker process, so a slow or dead receiver never holds a copy's
worker: each call is bounded (``ORDERCOPY_WEBHOOKS_TIMEOUT_SECONDS``), a tick makes up to
``ORDERCOPY_WEBHOOKS_CONCURRENCY`` at once and at most two to the same webhook, and a
tick that left events due (its batch full, or a webhook at its cap) sends the next tick
at once. The events are rows
(``copying.webhooks.delivery``): nothing is lost with a message, a process or the broker;
a tick that dies leaves its events to be taken again when their hold runs out.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import structlog
from sqlalchemy.orm import Session, sessionmaker

from api.payloads import payload
from config import get_settings
from copying.webhooks import delivery, signing
from models import Mode, db, utcnow
from worker import metrics, outbound
from worker.app import WEBHOOKS_TASK, app

log = structlog.get_logger("ordercopy.webhooks")

#: How long an event taken stays held beyond twice its call's time limit: then a tick
#: that died while sending it is taken for dead, and the event is sent again.
HOLD_MARGIN = timedelta(seconds=5)


@app.task(name=WEBHOOKS_TASK, acks_late=True, ignore_result=True)
def deliver_webhooks() -> dict[str, int]:
    """Send the webhook events due, a batch at a time. Returns them by outcome."""
    settings = get_settings()
    sessions = db.sessions()
    hold = 2 * timedelta(seconds=settings.webhooks_timeout_seconds) + HOLD_MARGIN
    with sessions.begin() as session:
        taken = delivery.take_due(session, utcnow(), limit=settings.webhooks_batch_size, hold=hold)
    due = taken.due
    if not due:
        return {}
    with ThreadPoolExecutor(settings.webhooks_concurrency, "webhook") as pool:
        delivered = list(pool.map(lambda event: deliver(sessions, event), due))
    counts = Counter("delivered" if ok else "failed" for ok in delivered)
    log.info("webhooks_tick_done", **counts)
    if taken.more:  # more were due than this tick could take: the next one comes at once
        deliver_webhooks.apply_async(queue="webhooks")
    return dict(counts)


def deliver(sessions: sessionmaker[Session], due: delivery.Due) -> bool:
    """Send one event and record the answer; whether it was delivered."""
    settings = get_settings()
    document = due.payload
    if document is None:
        with sessions.begin() as session:
            document = payload(
                session,
                due.resource_type,
                due.resource_id,
                due.mode,
                due.include_resources,
                base_url=settings.public_url,
            )
    if document is None:
        with sessions.begin() as session:
            delivery.record_gone(session, due, utcnow())
        metrics.count_delivery("resource_gone")
        log.info(
            "webhook_resource_gone",
            event_id=due.event_id,
            webhook_id=due.webhook_id,
            topic=due.topic,
            resource_id=due.resource_id,
        )
        return False
    body = json.dumps(document, separators=(",", ":")).encode()
    answer = outbound.post(
        due.callback_url,
        body,
        {
            "Content-Type": "application/vnd.api+json",
            "X-CommerceLayer-Topic": due.topic,
            signing.SIGNATURE_HEADER: signing.signature(due.shared_secret, body),
            "X-Ordercopy-Event-Id": due.event_id,
            "User-Agent": "ordercopy-webhooks",
        },
        timeout=settings.webhooks_timeout_seconds,
        allow_private=settings.webhooks_allow_private,
        live=due.mode == Mode.LIVE,
    )
    with sessions.begin() as session:
        delivery.record_answer(
            session,
            due,
            payload=document,
            response_code=answer.status,
            message=answer.message,
            delivered=answer.delivered,
            now=utcnow(),
            backoff_first=timedelta(seconds=settings.webhooks_backoff_seconds),
        )
    metrics.count_delivery("delivered" if answer.delivered else "not_delivered", answer.elapsed)
    log.log(
        20 if answer.delivered else 30,
        "webhook_delivered" if answer.delivered else "webhook_not_delivered",
        event_id=due.event_id,
        webhook_id=due.webhook_id,
        topic=due.topic,
        attempt=due.attempt,
        response_code=answer.status,
        message=answer.message,
        elapsed_s=round(answer.elapsed, 3),
    )
    return answer.delivered
