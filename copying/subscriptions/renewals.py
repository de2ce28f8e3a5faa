"""Subscription renewals: the tick that queues one copy per due period, exactly once,
and what a renewal's outcome does to its subscription.

The tick locks due subscriptions with ``FOR UPDATE SKIP LOCKED`` (two ticks
never take the same one), inserts their copies with ``ON CONFLICT
(order_subscription_id, period_key) DO NOTHING`` (a retried tick never
renews a period twice) and advances ``next_run_at`` in the same transaction.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import structlog
from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from copying.copies import copy_states
from copying.copies.dispatch import publish_after_commit
from copying.copies.history import EventKind
from copying.copies.options import CopyOptions
from copying.subscriptions import subscription_states
from copying.subscriptions.schedules import Schedule, ScheduleError, period_key
from copying.subscriptions.subscription_states import FINAL_ACTIONS, RENEWING, FailurePolicy
from copying.webhooks import events, topics
from models import (
    Mode,
    OrderCopy,
    OrderCopyEvent,
    OrderSubscription,
    SubscriptionStatus,
)
from models.dialects import insert_ignoring_conflicts, json_value
from models.order_copies import RECURRING

log = structlog.get_logger("ordercopy.renewals")

SUBSCRIPTIONS = cast(Table, OrderSubscription.__table__)


@dataclass
class TickResult:
    subscriptions: int = 0
    copies: list[str] = field(default_factory=list)


class Scheduled(Protocol):
    """What the calendar needs of a subscription (a row or the columns of one)."""

    @property
    def frequency(self) -> str: ...
    @property
    def starts_at(self) -> datetime | None: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def next_run_at(self) -> datetime | None: ...
    @property
    def catch_up(self) -> bool: ...
    @property
    def updated_at(self) -> datetime: ...


@dataclass(frozen=True)
class Due:
    """A due subscription, as the tick reads it (columns, not an ORM object)."""

    id: str
    mode: Mode
    status: SubscriptionStatus
    frequency: str
    starts_at: datetime | None
    expires_at: datetime | None
    next_run_at: datetime | None
    catch_up: bool
    updated_at: datetime
    source_order_id: str
    customer_payment_source_id: str | None
    place_target_order: bool


DUE_COLUMNS = [getattr(OrderSubscription, name) for name in Due.__dataclass_fields__]


def planned_period(subscription: Scheduled, schedule: Schedule, planned: datetime) -> datetime:
    """The scheduled run the planned one (``next_run_at``) renews: itself, or the one it
    replaces when it was moved off the schedule (PATCH ``next_run_at``).

    A run moved *later* lies after the run it replaces, which was still to come when it
    was moved; a run moved *earlier* lies before it, with the run before it gone by. The
    row's ``updated_at`` is no earlier than that move, so: the last scheduled run at or
    before the planned one if it is after ``updated_at`` (moved later), else the first
    after it (moved earlier). Never a period the schedule renews again: a run moved
    earlier by less than a period always counts as the one it replaced."""
    before = schedule.last_until(planned)
    if before == planned or (before is not None and before > subscription.updated_at):
        return before
    return schedule.next_after(planned)


def due_runs(subscription: Scheduled, now: datetime) -> list[datetime]:
    """The scheduled runs (periods) to renew now: the latest missed one, or every one
    with ``catch_up``.

    The planned run (``next_run_at``) counts even when moved off the schedule, as the
    period it replaces (``planned_period``); the scheduled runs after both follow."""
    planned = subscription.next_run_at
    if planned is None or planned > now:
        return []
    schedule = Schedule(subscription.frequency, subscription.starts_at or planned)
    period = planned_period(subscription, schedule, planned)
    later = schedule.between(max(planned, period) + timedelta(microseconds=1), now)
    runs = [
        renewed
        for renewed, at in ((period, planned), *((run, run) for run in later))
        if subscription.expires_at is None or at < subscription.expires_at
    ]
    return runs if subscription.catch_up else runs[-1:]


def next_run(subscription: Scheduled, now: datetime) -> datetime | None:
    """The first scheduled run after ``now`` and after the period the planned run renews
    (a run moved earlier stands for a later one), or None once the subscription has
    expired."""
    schedule = Schedule(subscription.frequency, subscription.starts_at or now)
    after = now
    planned = subscription.next_run_at
    if planned is not None and planned <= now:
        after = max(now, planned_period(subscription, schedule, planned))
    upcoming = schedule.next_after(after)
    if subscription.expires_at is not None and upcoming >= subscription.expires_at:
        return None
    return upcoming


def tick(session: Session, now: datetime, *, batch_size: int) -> TickResult:
    """Queue the renewals of up to ``batch_size`` due subscriptions. Does not commit.

    Set-based, in the caller's transaction: the due rows' columns, locked (``FOR UPDATE
    SKIP LOCKED``: subscriptions locked by another tick are that tick's), the calendar
    in Python, then on PostgreSQL one statement: ``INSERT … SELECT … ON CONFLICT DO
    NOTHING`` of the copies, their history, and the UPDATE advancing the
    subscriptions. Their copies are announced after commit.

    Order: due ``active`` subscriptions first, then due ``running`` ones (a renewal still
    in flight), each by ``next_run_at``. While a backlog of at least ``batch_size``
    active ones is due, due running ones wait for a later tick (the backlog drains: each
    renewed row leaves it). Kept so because each status is read along its (status,
    next_run_at) index, stopping at the batch's end, with ``SKIP LOCKED`` in the same
    statement; picking across both statuses by ``next_run_at`` would need either a sort
    of every due row or the ids chosen before locking (concurrent ticks would then choose
    the same rows and one would find them all locked).
    """
    due: list[Due] = []
    # One status at a time: each reads the (status, next_run_at) index in order and stops
    # at the batch's end (``status IN (…) ORDER BY next_run_at`` sorts every due row).
    for status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.RUNNING):
        if len(due) >= batch_size:
            break
        due += [
            Due(*row)
            for row in session.execute(
                select(*DUE_COLUMNS)
                .where(OrderSubscription.status == status, OrderSubscription.next_run_at <= now)
                .order_by(OrderSubscription.next_run_at)
                .limit(batch_size - len(due))
                .with_for_update(skip_locked=True)
            )
        ]
    result = TickResult(subscriptions=len(due))
    rows: list[dict[str, Any]] = []
    advances: list[dict[str, Any]] = []
    changes: list[events.Change] = []
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
            to = subscription_states.check_move(
                subscription.id, subscription.status, SubscriptionStatus.INACTIVE
            )
            advances.append(_advance(subscription, subscription.next_run_at, to))
            changes.append(
                events.Change(subscription.id, subscription.mode, topics.SUBSCRIPTION_DEACTIVATE)
            )
            continue
        rows.extend(_renewal(subscription, run, now) for run in runs)
        to = subscription.status
        if runs:
            to = subscription_states.check_move(subscription.id, to, SubscriptionStatus.RUNNING)
        advances.append(_advance(subscription, upcoming, to))
    if session.get_bind().dialect.name == "postgresql":
        result.copies = _write_postgresql(session, rows, advances, now)
    else:
        result.copies = _write_portable(session, rows, advances, now)
    # Copies created as the API creates them: their webhook events written with them.
    mode_of = {row["id"]: row["mode"] for row in rows}
    created = topics.of_copy(topics.CREATE, RECURRING)
    changes += [events.Change(copy_id, mode_of[copy_id], created) for copy_id in result.copies]
    events.record(session, changes, now)
    if result.copies:
        publish_after_commit(session, result.copies)
    if due:
        log.info("renewals_tick", subscriptions=len(due), copies=len(result.copies))
    return result


#: One statement per batch: the copies (ON CONFLICT DO NOTHING: a period renews once),
#: the history of those inserted, and the subscriptions advanced. The copies' rows, made
#: by ``copy_states.new_row``, travel as one JSON document, the advances as arrays: five
#: parameters whatever the batch's size. (Every part sees the rows as they were before
#: the statement: the copies read nothing the advance changes.)
_COPY_COLUMNS = ", ".join(copy_states.NEW_ROW_COLUMNS)

RENEW = text(
    f"""
    WITH inserted AS (
        INSERT INTO order_copies ({_COPY_COLUMNS})
        SELECT {_COPY_COLUMNS}
        FROM json_populate_recordset(NULL::order_copies, CAST(:copies AS json))
        ON CONFLICT (order_subscription_id, period_key) DO NOTHING
        RETURNING id, mode
    ), history AS (
        INSERT INTO order_copy_events (order_copy_id, mode, attempt, kind, data,
            created_at, updated_at)
        SELECT id, mode, 0, 'created', '{{"renewal": true}}', :now, :now FROM inserted
    ), advanced AS (
        UPDATE order_subscriptions AS s
        SET next_run_at = a.next_run_at, status = a.status, updated_at = :now
        FROM unnest(
            CAST(:advanced_ids AS varchar[]),
            CAST(:next_runs AS timestamptz[]),
            CAST(:statuses AS varchar[])
        ) AS a(id, next_run_at, status)
        WHERE s.id = a.id
    )
    SELECT id FROM inserted
    """
)


def _write_postgresql(
    session: Session, rows: list[dict[str, Any]], advances: list[dict[str, Any]], now: datetime
) -> list[str]:
    """The batch in one statement, whatever its size. Returns the copies inserted."""
    if not advances:
        return []
    return list(
        session.scalars(
            RENEW,
            {
                "copies": json.dumps(rows, default=json_value),
                "advanced_ids": [a["subscription_id"] for a in advances],
                "next_runs": [a["upcoming"] for a in advances],
                "statuses": [a["to"].value for a in advances],
                "now": now,
            },
        )
    )


def _write_portable(
    session: Session, rows: list[dict[str, Any]], advances: list[dict[str, Any]], now: datetime
) -> list[str]:
    """The same with SQLAlchemy Core (SQLite, the embedded default), a few statements.

    The copies go as multi-row VALUES (SQLite cannot RETURNING from executemany), 1,000
    rows at a time (23 parameters each, under SQLite's 32,766)."""
    created: list[Any] = []
    for start in range(0, len(rows), 1000):
        created += session.execute(
            insert_ignoring_conflicts(
                session.get_bind().dialect,
                OrderCopy.__table__,
                ["order_subscription_id", "period_key"],
            )
            .values(rows[start : start + 1000])
            .returning(OrderCopy.__table__.c.id, OrderCopy.__table__.c.mode)
        ).all()
    if created:
        session.execute(
            insert(OrderCopyEvent),
            [
                {
                    "order_copy_id": copy_id,
                    "mode": mode,
                    "attempt": 0,
                    "kind": EventKind.CREATED,
                    "data": {"renewal": True},
                    "created_at": now,
                    "updated_at": now,
                }
                for copy_id, mode in created
            ],
        )
    if advances:
        table = SUBSCRIPTIONS
        session.execute(
            update(table)
            .where(table.c.id == bindparam("subscription_id"))
            .values(next_run_at=bindparam("upcoming"), status=bindparam("to"), updated_at=now),
            advances,
            execution_options={"synchronize_session": False},
        )
    return [copy_id for copy_id, _ in created]


def _advance(
    subscription: Due, upcoming: datetime | None, to: SubscriptionStatus
) -> dict[str, Any]:
    return {"subscription_id": subscription.id, "upcoming": upcoming, "to": to}


def _renewal(subscription: Due, run: datetime, now: datetime) -> dict[str, Any]:
    return copy_states.new_row(
        mode=subscription.mode,
        source_order_id=subscription.source_order_id,
        options=CopyOptions(place_target_order=subscription.place_target_order),
        now=now,
        order_subscription_id=subscription.id,
        customer_payment_source_id=subscription.customer_payment_source_id,
        period_key=period_key(run),
    )


def record_completed(session: Session, subscription_ids: Sequence[str], now: datetime) -> None:
    """Count a completed renewal for each id (an id twice: two renewals); a ``running``
    subscription is ``active`` again; each renewal writes its ``last_run_succeeded``
    events. One statement per count, almost always one. Does not commit."""
    counts = Counter(subscription_ids)
    succeeded: list[events.Change] = []
    for count in sorted(set(counts.values())):
        succeeded += [
            events.Change(subscription_id, mode, topics.LAST_RUN_SUCCEEDED)
            for subscription_id, mode in session.execute(
                update(SUBSCRIPTIONS)
                .where(SUBSCRIPTIONS.c.id.in_([i for i, n in counts.items() if n == count]))
                .values(
                    last_run_at=now,
                    occurrencies=SUBSCRIPTIONS.c.occurrencies + count,
                    succeeded_on_last_run=True,
                    status=subscription_states.active_again(SUBSCRIPTIONS.c.status),
                    updated_at=now,
                )
                .returning(SUBSCRIPTIONS.c.id, SUBSCRIPTIONS.c.mode)
            )
            for _ in range(count)
        ]
    events.record(session, succeeded, now)


def record_failed(
    session: Session, subscription_id: str, *, retries: int, now: datetime
) -> timedelta | None:
    """Apply a failed renewal to its subscription (its ``last_run_failed`` events, and
    those of the move its failure policy's final action makes); returns the delay after
    which the failed copy is to be retried, or None. Does not commit."""
    subscription = session.get(OrderSubscription, subscription_id, with_for_update=True)
    if subscription is None:
        return None
    subscription.errors_count += 1
    subscription.succeeded_on_last_run = False
    subscription_states.announce(session, subscription, topics.LAST_RUN_FAILED, now)
    if subscription.status not in RENEWING:
        return None
    try:
        policy = FailurePolicy.parse(subscription.failure_policy)
    except ValueError:
        policy = FailurePolicy()
    if retries < len(policy.retry_after):
        return policy.retry_after[retries]
    final = FINAL_ACTIONS[policy.final_action]
    if final == SubscriptionStatus.INACTIVE:
        subscription_states.deactivate(session, subscription, now)
    elif final == SubscriptionStatus.CANCELLED:
        subscription_states.cancel(session, subscription, now)
    elif final != subscription.status:  # keep_active: running → active, no event
        subscription_states.move(subscription, final)
    return None


def wallet_entry_for(
    session: Session, subscription_id: str | None, fallback: str | None
) -> str | None:
    """The wallet entry a renewal charges: its subscription's current one (ops may have
    switched it since the copy was queued); ``fallback`` when it has no subscription (none,
    or deleted since)."""
    return wallet_entries_for(session, [(subscription_id, fallback)])[0]


def wallet_entries_for(
    session: Session, runs: Sequence[tuple[str | None, str | None]]
) -> list[str | None]:
    """:func:`wallet_entry_for` of each (subscription id, fallback), in one query (columns,
    not entities: a chunk of renewals reads one per copy)."""
    wanted = {subscription_id for subscription_id, _ in runs if subscription_id}
    current: dict[str, str | None] = {}
    if wanted:
        rows = session.execute(
            select(OrderSubscription.id, OrderSubscription.customer_payment_source_id).where(
                OrderSubscription.id.in_(wanted)
            )
        )
        current = {subscription_id: entry for subscription_id, entry in rows}
    return [
        current.get(subscription_id, fallback) if subscription_id else fallback
        for subscription_id, fallback in runs
    ]
