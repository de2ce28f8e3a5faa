"""Subscription renewals: the tick that queues one copy per due period, exactly once,
and what a renewal's outcome does to its subscription.

The tick locks due subscriptions with ``FOR UPDATE SKIP LOCKED`` (two ticks
never take the same one), inserts their copies with ``ON CONFLICT
(order_subscription_id, period_key) DO NOTHING`` (a retried tick never
renews a period twice) and advances ``next_run_at`` in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from copying import subscriptions
from copying.dispatch import publish_after_commit
from copying.schedules import Schedule, ScheduleError, period_key
from copying.subscriptions import FINAL_ACTIONS, RENEWING, FailurePolicy
from models import (
    CopyStatus,
    OrderCopy,
    OrderCopyEvent,
    OrderSubscription,
    SubscriptionStatus,
    new_public_id,
)
from models.dialects import insert_ignoring_conflicts

log = structlog.get_logger("ordercopy.renewals")


@dataclass
class TickResult:
    subscriptions: int = 0
    copies: list[str] = field(default_factory=list)


def due_runs(subscription: OrderSubscription, now: datetime) -> list[datetime]:
    """The runs to renew now: the latest missed one, or every one with ``catch_up``.

    The planned run (``next_run_at``) counts even when set by hand off the schedule;
    the scheduled runs after it follow."""
    planned = subscription.next_run_at
    if planned is None or planned > now:
        return []
    schedule = Schedule(subscription.frequency, subscription.starts_at or planned)
    runs = [
        run
        for run in (planned, *schedule.between(planned + timedelta(microseconds=1), now))
        if subscription.expires_at is None or run < subscription.expires_at
    ]
    return runs if subscription.catch_up else runs[-1:]


def next_run(subscription: OrderSubscription, now: datetime) -> datetime | None:
    """The first run after ``now``, or None once the subscription has expired."""
    schedule = Schedule(subscription.frequency, subscription.starts_at or now)
    upcoming = schedule.next_after(now)
    if subscription.expires_at is not None and upcoming >= subscription.expires_at:
        return None
    return upcoming


def tick(session: Session, now: datetime, *, batch_size: int) -> TickResult:
    """Queue the renewals of up to ``batch_size`` due subscriptions. Does not commit.

    Their copies are announced after commit. Subscriptions locked by another tick
    are skipped (they are that tick's).
    """
    due = session.scalars(
        select(OrderSubscription)
        .where(OrderSubscription.status.in_(RENEWING), OrderSubscription.next_run_at <= now)
        .order_by(OrderSubscription.next_run_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    ).all()
    result = TickResult(subscriptions=len(due))
    rows: list[dict[str, Any]] = []
    for subscription in due:
        try:
            runs = due_runs(subscription, now)
            upcoming = next_run(subscription, now)
        except ScheduleError as error:  # stored before validation existed: stop, say why
            log.error(
                "subscription_schedule_invalid",
                order_subscription_id=subscription.id,
                error=str(error),
            )
            subscriptions.deactivate(subscription)
            continue
        rows.extend(_renewal(subscription, run, now) for run in runs)
        subscription.next_run_at = upcoming
        if runs:
            subscriptions.move(subscription, SubscriptionStatus.RUNNING)
    if rows:
        result.copies = list(
            session.scalars(
                insert_ignoring_conflicts(
                    session.get_bind().dialect,
                    OrderCopy.__table__,
                    ["order_subscription_id", "period_key"],
                )
                .values(rows)
                .returning(OrderCopy.__table__.c.id)
            )
        )
    if result.copies:
        session.execute(
            insert(OrderCopyEvent),
            [
                {
                    "order_copy_id": copy_id,
                    "mode": mode,
                    "attempt": 0,
                    "kind": "created",
                    "data": {"renewal": True},
                    "created_at": now,
                    "updated_at": now,
                }
                for copy_id, mode in session.execute(
                    select(OrderCopy.id, OrderCopy.mode).where(OrderCopy.id.in_(result.copies))
                )
            ],
        )
        publish_after_commit(session, result.copies)
    session.flush()
    if due:
        log.info("renewals_tick", subscriptions=len(due), copies=len(result.copies))
    return result


def _renewal(subscription: OrderSubscription, run: datetime, now: datetime) -> dict[str, Any]:
    return {
        "id": new_public_id(),
        "mode": subscription.mode,
        "status": CopyStatus.PENDING,
        "source_order_id": subscription.source_order_id,
        "order_subscription_id": subscription.id,
        "customer_payment_source_id": subscription.customer_payment_source_id,
        "place_target_order": subscription.place_target_order,
        "cancel_source_order": False,
        "reuse_wallet": True,
        "skip_errors": False,
        "errors_log": {},
        "errors_count": 0,
        "metadata": {},
        "attempt": 0,
        "claims": 0,
        "retries": 0,
        "dispatched_at": now,
        "period_key": period_key(run),
        "created_at": now,
        "updated_at": now,
    }


def record_renewal(
    session: Session, subscription_id: str, *, completed: bool, retries: int, now: datetime
) -> timedelta | None:
    """Apply a renewal's outcome to its subscription; returns the delay after which the
    failed copy is to be retried (its failure policy), or None. Does not commit."""
    subscription = session.get(OrderSubscription, subscription_id, with_for_update=True)
    if subscription is None:
        return None
    if completed:
        subscription.last_run_at = now
        subscription.occurrencies += 1
        subscription.succeeded_on_last_run = True
        if subscription.status == SubscriptionStatus.RUNNING:
            subscriptions.move(subscription, SubscriptionStatus.ACTIVE)
        return None
    subscription.errors_count += 1
    subscription.succeeded_on_last_run = False
    if subscription.status not in RENEWING:
        return None
    try:
        policy = FailurePolicy.parse(subscription.failure_policy)
    except ValueError:
        policy = FailurePolicy()
    if retries < len(policy.retry_after):
        return policy.retry_after[retries]
    final = FINAL_ACTIONS[policy.final_action]
    if final != subscription.status:
        subscriptions.move(subscription, final)
    if final == SubscriptionStatus.CANCELLED:
        subscription.next_run_at = None
    return None


def wallet_entry_for(
    session: Session, subscription_id: str | None, fallback: str | None
) -> str | None:
    """The wallet entry a renewal charges: its subscription's current one (ops may have
    switched it since the copy was queued)."""
    if subscription_id is None:
        return fallback
    subscription = session.get(OrderSubscription, subscription_id)
    return subscription.customer_payment_source_id if subscription else fallback
