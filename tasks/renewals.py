"""The renewals' beat tick: queue the copies of due subscriptions, batch by batch."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from config import get_settings
from copying.copies.dispatch import unit_of_work
from copying.subscriptions.renewals import tick as renewals_tick
from models import db, utcnow
from worker import runtime
from worker.app import RENEWALS_TICK_TASK, app
from worker.publisher import publish

log = structlog.get_logger("ordercopy.renewals")

#: Batches one tick takes at most; the next tick goes on where this one stopped.
MAX_BATCHES = 100


def publish_renewals(copy_ids: Sequence[str]) -> None:
    """In ``copy_orders`` messages of one chunk each (``ORDERCOPY_CHUNK_SIZE``): a storm of
    renewals pays Celery's cost once per chunk, and still spreads over every process of
    the pool."""
    publish(copy_ids, per_message=runtime.chunk_size())


@app.task(name=RENEWALS_TICK_TASK, acks_late=True, ignore_result=True)
def tick() -> dict[str, int]:
    """Each batch is one transaction; its copies are published after it commits."""
    settings = get_settings()
    batch = settings.renewals_batch_size
    subscriptions = copies = alerts = 0
    for _ in range(MAX_BATCHES):
        with unit_of_work(db.sessions(), publish_renewals) as session:
            result = renewals_tick(session, utcnow(), batch_size=batch)
        subscriptions += result.subscriptions
        copies += len(result.copies)
        alerts += result.alerts
        if result.subscriptions < batch and result.alerts < batch:
            break
    return {"subscriptions": subscriptions, "copies": copies, "alerts": alerts}
