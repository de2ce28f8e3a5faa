"""The sweeper's beat tick."""

from __future__ import annotations

from datetime import timedelta

import structlog

from config import get_settings
from copying.copies import counts
from copying.copies.dispatch import unit_of_work
from copying.copies.sweeper import purge_idempotency_keys
from copying.copies.sweeper import sweep as sweep_copies
from copying.orders.placing import settle_abandoned, void_abandoned
from models import db, utcnow
from models.idempotency import KEEP_FOR
from worker.app import RECOUNT_TASK, SWEEP_TASK, app
from worker.publisher import publish
from worker.runtime import gateways

log = structlog.get_logger("ordercopy.metrics")


@app.task(name=RECOUNT_TASK, acks_late=True, ignore_result=True)
def recount() -> int:
    """Check metric_counts against a recount of the tables and write what it misses (none,
    while its triggers run): one REPEATABLE READ transaction, no lock taken."""
    with db.engine().connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            corrections = counts.reconcile(connection)
    if corrections:
        log.warning("metric_counts_corrected", corrections=len(corrections))
    return len(corrections)


@app.task(name=SWEEP_TASK, acks_late=True, ignore_result=True)
def sweep() -> dict[str, int]:
    """Re-announce stale pending copies, rescue expired runs, fail those out of runs, void
    payments left behind, ask again the captures and refunds left unanswered."""
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
    left_for = timedelta(seconds=settings.abandoned_payment_after_seconds)
    abandoned = void_abandoned(
        db.sessions(), gateways(), utcnow(), older_than=left_for, limit=settings.sweep_batch_size
    )
    asked_again = settle_abandoned(
        db.sessions(), gateways(), utcnow(), older_than=left_for, limit=settings.sweep_batch_size
    )
    with db.sessions().begin() as session:  # apart: the copies' row locks are not held longer
        purged = purge_idempotency_keys(
            session, utcnow() - KEEP_FOR, batch_size=settings.sweep_batch_size
        )
    with db.engine().begin() as connection:  # /metrics then sums a row per count
        folded = counts.fold(connection)
    return {
        "metric_counts_folded": folded,
        "idempotency_keys_purged": purged,
        "abandoned_payments": abandoned,
        "abandoned_transactions": asked_again,
        "republished": len(result.republished),
        "rescued": len(result.rescued),
        "gave_up": len(result.gave_up),
    }
