"""The renewals' beat tick: queue the copies of due subscriptions, batch by batch."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from config import get_settings
from copying.dispatch import unit_of_work
from copying.renewals import tick as renewals_tick
from models import db, utcnow
from worker.app import COPY_BATCH_TASK, RENEWALS_TICK_TASK, app

log = structlog.get_logger("ordercopy.renewals")

#: Batches one tick takes at most; the next tick goes on where this one stopped.
MAX_BATCHES = 100
#: Copies per ``copy_orders`` message: a storm of renewals pays Celery's cost per message
#: once per this many copies, and still spreads over every process of the pool.
COPIES_PER_MESSAGE = 50


@app.task(name=RENEWALS_TICK_TASK, acks_late=True, ignore_result=True)
def tick() -> dict[str, int]:
    """Each batch is one transaction; its copies are announced after it commits."""
    settings = get_settings()
    subscriptions = copies = 0
    for _ in range(MAX_BATCHES):
        with unit_of_work(db.sessions(), announce) as session:
            result = renewals_tick(session, utcnow(), batch_size=settings.renewals_batch_size)
        subscriptions += result.subscriptions
        copies += len(result.copies)
        if result.subscriptions < settings.renewals_batch_size:
            break
    return {"subscriptions": subscriptions, "copies": copies}


def announce(copy_ids: Sequence[str]) -> None:
    """The tick's doorbells: one ``copy_orders`` message per ``COPIES_PER_MESSAGE`` copies.

    A broker outage is logged, not raised: the copies are committed, and the
    sweeper re-announces those left ``pending`` one by one.
    """
    try:
        with app.producer_or_acquire() as producer:
            for start in range(0, len(copy_ids), COPIES_PER_MESSAGE):
                batch = list(copy_ids[start : start + COPIES_PER_MESSAGE])
                app.send_task(COPY_BATCH_TASK, args=(batch,), queue="copies", producer=producer)
    except Exception as error:  # kombu raises many kinds; every one means "not sent"
        log.warning("publish_failed", copies=len(copy_ids), error=str(error))
