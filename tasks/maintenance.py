"""The sweeper's beat tick."""

from __future__ import annotations

from datetime import timedelta

from config import get_settings
from copying.copies.dispatch import unit_of_work
from copying.copies.sweeper import purge_idempotency_keys
from copying.copies.sweeper import sweep as sweep_copies
from copying.orders.placing import void_abandoned
from models import db, utcnow
from models.idempotency import KEEP_FOR
from worker.app import SWEEP_TASK, app
from worker.publisher import publish
from worker.runtime import gateways


@app.task(name=SWEEP_TASK, acks_late=True, ignore_result=True)
def sweep() -> dict[str, int]:
    """Re-announce stale pending copies, rescue expired runs, fail those out of runs, void
    payments left behind."""
    settings = get_settings()
    with unit_of_work(db.sessions(), publish) as session:
        result = sweep_copies(
            session,
            utcnow(),
            redispatch_after=timedelta(seconds=settings.redispatch_after_seconds),
            redispatch_max=timedelta(seconds=settings.redispatch_max_seconds),
            max_claims=settings.max_claims,
            batch_size=settings.sweep_batch_size,
        )
    abandoned = void_abandoned(
        db.sessions(),
        gateways(),
        utcnow(),
        older_than=timedelta(seconds=settings.abandoned_payment_after_seconds),
        limit=settings.sweep_batch_size,
    )
    with db.sessions().begin() as session:  # apart: the copies' row locks are not held longer
        purged = purge_idempotency_keys(
            session, utcnow() - KEEP_FOR, batch_size=settings.sweep_batch_size
        )
    return {
        "idempotency_keys_purged": purged,
        "abandoned_payments": abandoned,
        "republished": len(result.republished),
        "rescued": len(result.rescued),
        "gave_up": len(result.gave_up),
    }
