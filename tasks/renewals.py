"""The renewals' beat tick: queue the copies of due subscriptions, batch by batch."""

from __future__ import annotations

from functools import partial

import structlog

from config import get_settings
from copying.dispatch import unit_of_work
from copying.renewals import tick as renewals_tick
from models import db, utcnow
from worker.app import RENEWALS_TICK_TASK, app
from worker.publisher import publish

log = structlog.get_logger("ordercopy.renewals")

#: Batches one tick takes at most; the next tick goes on where this one stopped.
MAX_BATCHES = 100
#: Copies per ``copy_orders`` message: a storm of renewals pays Celery's cost per message
#: once per this many copies, and still spreads over every process of the pool.
COPIES_PER_MESSAGE = 50
announce = partial(publish, per_message=COPIES_PER_MESSAGE)


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
