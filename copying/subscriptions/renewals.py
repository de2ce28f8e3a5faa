"""Subscription renewals: the tick that queues one copy per due period, exactly once,
sends each run's reminder exactly once, and what a renewal's outcome does to its
subscription.

The tick locks due subscriptions with ``FOR UPDATE SKIP LOCKED`` (two ticks
never take the same one), inserts their copies with ``ON CONFLICT
(order_subscription_id, period_key) DO NOTHING`` (a retried tick never
renews a period twice) and advances ``next_run_at`` in the same transaction.
A subscription whose wallet entry cannot pay is not renewed: it goes ``pending``.
A reminder owed (``renewal_alert_at`` gone by) is cleared in the transaction that
writes its event, so no tick, retried or concurrent, sends it twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, Protocol, cast

import structlog
from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from copying.copies import copy_states
from copying.copies.dispatch import publish_after_commit
from copying.copies.history import EventKind
from copying.copies.options import CopyOptions
from copying.orders import wallet
from copying.subscriptions import failures, history, subscription_states
from copying.subscriptions.schedules import Schedule, ScheduleError, period_key
from copying.subscriptions.subscription_states import FINAL_ACTIONS, RENEWING, FailurePolicy
from copying.webhooks import events, topics
from models import (
    CustomerPaymentSource,
    Mode,
    Order,
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
    #: Reminders sent (``order_subscriptions.renewal``).
    alerts: int = 0
    #: Subscriptions parked as ``pending`` (no usable wallet entry).
    parked: int = 0


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
    customer_id: str | None
    renewal_alert_period: int
    renewal_alert_at: datetime | None
    # The wallet entry's columns (None: no entry, or it is gone).
    entry_mode: Mode | None
    entry_customer_id: str | None
    entry_disabled: bool | None
    entry_expires_on: date | None

    def wallet_problem(
        self, today: date, fallback: tuple[str, _Entry | None] | None = None
    ) -> str | None:
        """Why its renewal could not charge its wallet entry today, or None
        (``subscription_states.problem_with_wallet`` on the columns read). Without an entry
        of its own a renewal charges its source order's: ``fallback``, that entry's id and
        columns (None: the source has none)."""
        if not self.place_target_order:
            return None
        entry_id = self.customer_payment_source_id
        entry = None
        if entry_id is None:
            if fallback is None:
                return subscription_states.NO_WALLET_ENTRY
            entry_id, entry = fallback
        elif self.entry_mode is not None:
            entry = _Entry(
                self.entry_mode,
                self.entry_customer_id,
                bool(self.entry_disabled),
                self.entry_expires_on,
            )
        return wallet.problem_with_entry(entry, entry_id, self, today)


class _Entry(NamedTuple):
    mode: Mode
    customer_id: str | None
    disabled: bool
    expires_on: date | None


def _source_entries(session: Session, due: Sequence[Due]) -> dict[str, tuple[str, _Entry | None]]:
    """The wallet entries the source orders of due subscriptions without one of their own
    were paid with (their renewals charge those), by source order id; one query, none when
    every subscription has its own (the usual case)."""
    wanted = {d.source_order_id for d in due if d.customer_payment_source_id is None}
    if not wanted:
        return {}
    rows = session.execute(
        select(
            Order.id,
            Order.customer_payment_source_id,
            _ENTRY.mode,
            _ENTRY.customer_id,
            _ENTRY.disabled,
            _ENTRY.expires_on,
        )
        .outerjoin(_ENTRY, _ENTRY.id == Order.customer_payment_source_id)
        .where(Order.id.in_(wanted), Order.customer_payment_source_id.is_not(None))
    )
    found: dict[str, tuple[str, _Entry | None]] = {}
    for order_id, entry_id, mode, customer_id, disabled, expires_on in rows:
        entry = _Entry(mode, customer_id, bool(disabled), expires_on) if mode else None
        found[order_id] = (entry_id or "", entry)
    return found


_ENTRY = CustomerPaymentSource
DUE_COLUMNS = [
    *(getattr(OrderSubscription, name) for name in list(Due.__dataclass_fields__)[:15]),
    _ENTRY.mode,
    _ENTRY.customer_id,
    _ENTRY.disabled,
    _ENTRY.expires_on,
]


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
    """Send up to ``batch_size`` reminders owed, and queue the renewals of up to
    ``batch_size`` due subscriptions. Does not commit.

    Set-based, in the caller's transaction: the reminders owed, cleared as they are
    written (:func:`send_alerts`); the due rows' columns (and their wallet entries'),
    locked (``FOR UPDATE SKIP LOCKED``: subscriptions locked by another tick are that
    tick's), the calendar in Python, then on PostgreSQL one statement: ``INSERT … SELECT
    … ON CONFLICT DO NOTHING`` of the copies, their history, and the UPDATE advancing
    the subscriptions. Their copies are announced after commit. A due subscription whose
    wallet entry cannot pay is parked as ``pending`` instead of renewed.

    Order: due ``active`` subscriptions first, then due ``running`` ones (a renewal still
    in flight), each by ``next_run_at``. While a backlog of at least ``batch_size``
    active ones is due, due running ones wait for a later tick (the backlog drains: each
    renewed row leaves it). Kept so because each status is read along its (status,
    next_run_at) index, stopping at the batch's end, with ``SKIP LOCKED`` in the same
    statement; picking across both statuses by ``next_run_at`` would need either a sort
    of every due row or the ids chosen before locking (concurrent ticks would then choose
    the same rows and one would find them all locked).
    """
    alerted = send_alerts(session, now, batch_size=batch_size)
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
                .outerjoin(_ENTRY, _ENTRY.id == OrderSubscription.customer_payment_source_id)
                .where(OrderSubscription.status == status, OrderSubscription.next_run_at <= now)
                .order_by(OrderSubscription.next_run_at)
                .limit(batch_size - len(due))
                .with_for_update(skip_locked=True, of=OrderSubscription)
            )
        ]
    result = TickResult(subscriptions=len(due), alerts=alerted)
    fallbacks = _source_entries(session, due)
    rows: list[dict[str, Any]] = []
    advances: list[dict[str, Any]] = []
    changes: list[events.Change] = []
    facts: list[history.Event] = []
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
            advances.append(_advance(subscription, subscription.next_run_at, to, None))
            changes.append(
                events.Change(subscription.id, subscription.mode, topics.SUBSCRIPTION_DEACTIVATE)
            )
            continue
        if subscription.renewal_alert_at is not None and subscription.renewal_alert_at <= now:
            # Its reminder, owed and not sent yet (send_alerts' batch was full): now.
            changes.append(_alert(subscription.id, subscription.mode))
            facts.append(_alert_fact(subscription.id, subscription.mode, subscription.next_run_at))
            result.alerts += 1
        problem = (
            subscription.wallet_problem(now.date(), fallbacks.get(subscription.source_order_id))
            if runs
            else None
        )
        if problem == subscription_states.NO_WALLET_ENTRY and subscription_states.renews_free(
            session, subscription.id, subscription.source_order_id
        ):
            problem = None  # nothing to charge: it renews without a card
        if problem is not None:
            # Not attempted: it waits, its run planned as it was, for a card and _activate.
            to = subscription_states.check_move(
                subscription.id, subscription.status, SubscriptionStatus.PENDING
            )
            advances.append(_advance(subscription, subscription.next_run_at, to, None))
            changes.append(
                events.Change(subscription.id, subscription.mode, topics.SUBSCRIPTION_PENDING)
            )
            facts.append(
                history.Event(
                    subscription.id,
                    subscription.mode,
                    history.EventKind.PENDING,
                    {"reason": problem, "run": history.moment(subscription.next_run_at)},
                )
            )
            result.parked += 1
            continue
        rows.extend(_renewal(subscription, run, now) for run in runs)
        to = subscription.status
        if runs:
            to = subscription_states.check_move(subscription.id, to, SubscriptionStatus.RUNNING)
        alert_at = (
            upcoming - timedelta(hours=subscription.renewal_alert_period)
            if upcoming is not None
            else None
        )
        advances.append(_advance(subscription, upcoming, to, alert_at))
    if session.get_bind().dialect.name == "postgresql":
        result.copies = _write_postgresql(session, rows, advances, now)
    else:
        result.copies = _write_portable(session, rows, advances, now)
    # Copies created as the API creates them: their webhook events written with them.
    mode_of = {row["id"]: row["mode"] for row in rows}
    created = topics.of_copy(topics.CREATE, RECURRING)
    changes += [events.Change(copy_id, mode_of[copy_id], created) for copy_id in result.copies]
    events.record(session, changes, now)
    if facts:
        history.append(session, facts, now)
    if result.copies:
        publish_after_commit(session, result.copies)
    if due or alerted:
        log.info(
            "renewals_tick",
            subscriptions=len(due),
            copies=len(result.copies),
            alerts=result.alerts,
            parked=result.parked,
        )
    return result


def _alert(subscription_id: str, mode: Mode) -> events.Change:
    return events.Change(subscription_id, mode, topics.SUBSCRIPTION_RENEWAL)


def _alert_fact(subscription_id: str, mode: Mode, run: datetime | None) -> history.Event:
    return history.Event(
        subscription_id, mode, history.EventKind.RENEWAL_ALERT, {"run": history.moment(run)}
    )


def send_alerts(session: Session, now: datetime, *, batch_size: int) -> int:
    """Send up to ``batch_size`` reminders owed (``renewal_alert_at`` gone by) of renewing
    subscriptions: each cleared by the statement that reads it, its webhook event and
    history written in the same transaction, so a reminder is sent once whatever ticks
    run, concurrently or again after a crash. Returns how many. Does not commit."""
    owed = (
        select(SUBSCRIPTIONS.c.id)
        .where(
            SUBSCRIPTIONS.c.renewal_alert_at <= now,
            SUBSCRIPTIONS.c.status.in_([s.value for s in RENEWING]),
        )
        .order_by(SUBSCRIPTIONS.c.renewal_alert_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    )
    sent = session.execute(
        update(SUBSCRIPTIONS)
        .where(SUBSCRIPTIONS.c.id.in_(owed.scalar_subquery()))
        # updated_at kept: it dates the last change of the terms (``planned_period``).
        .values(renewal_alert_at=None, updated_at=SUBSCRIPTIONS.c.updated_at)
        .returning(SUBSCRIPTIONS.c.id, SUBSCRIPTIONS.c.mode, SUBSCRIPTIONS.c.next_run_at)
    ).all()
    if sent:
        events.record(session, [_alert(i, mode) for i, mode, _ in sent], now)
        history.append(session, [_alert_fact(i, mode, run) for i, mode, run in sent], now)
    return len(sent)


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
        SET next_run_at = a.next_run_at, status = a.status,
            renewal_alert_at = a.alert_at, updated_at = :now
        FROM unnest(
            CAST(:advanced_ids AS varchar[]),
            CAST(:next_runs AS timestamptz[]),
            CAST(:statuses AS varchar[]),
            CAST(:alerts AS timestamptz[])
        ) AS a(id, next_run_at, status, alert_at)
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
                "alerts": [a["alert_at"] for a in advances],
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
            .values(
                next_run_at=bindparam("upcoming"),
                status=bindparam("to"),
                renewal_alert_at=bindparam("alert_at"),
                updated_at=now,
            ),
            advances,
            execution_options={"synchronize_session": False},
        )
    return [copy_id for copy_id, _ in created]


def _advance(
    subscription: Due,
    upcoming: datetime | None,
    to: SubscriptionStatus,
    alert_at: datetime | None,
) -> dict[str, Any]:
    """The row's next run, status and the reminder it owes next (None: none)."""
    return {
        "subscription_id": subscription.id,
        "upcoming": upcoming,
        "to": to,
        "alert_at": alert_at,
    }


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


def record_completed(
    session: Session,
    subscription_ids: Sequence[str],
    now: datetime,
    *,
    retried: Sequence[str] = (),
) -> None:
    """Record a completed renewal for each id (an id twice: two renewals): its run, last
    run time and success; a ``running`` subscription is ``active`` again, no retry is
    due; each renewal writes its ``last_run_succeeded`` events. ``retried``: ids whose
    completed renewal is a retry of a failed one, whose run was counted when it failed
    (``occurrencies`` counts a period's renewal once). One statement per count, almost
    always one. Does not commit."""
    counts = Counter(subscription_ids)  # the runs each counts
    completions = counts + Counter(retried)  # the events each owes
    for subscription_id in retried:
        counts.setdefault(subscription_id, 0)
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
                    next_attempt_at=None,
                    status=subscription_states.active_again(SUBSCRIPTIONS.c.status),
                    updated_at=now,
                )
                .returning(SUBSCRIPTIONS.c.id, SUBSCRIPTIONS.c.mode)
            )
            for _ in range(completions[subscription_id])
        ]
    events.record(session, succeeded, now)


def record_failed(
    session: Session,
    subscription_id: str,
    *,
    copy_id: str,
    retries: int,
    errors: Mapping[str, Sequence[str]],
    now: datetime,
) -> timedelta | None:
    """Apply a failed renewal (retried ``retries`` times before) to its subscription;
    returns the delay after which the failed copy is to be retried, or None.

    The run counts (``last_run_at``, ``occurrencies`` on a first run, ``errors_count``)
    and its ``last_run_failed`` events are written. A renewing subscription then: goes
    ``pending`` when it had no wallet entry it could charge; else retries after its
    failure policy's next delay, unless retrying cannot fix the errors
    (``failures.why_not_retry``) or none is left, in which case the final action applies
    (Commerce Layer's default: stay active, the next period as scheduled). Either way it
    is no longer ``running``: ``next_attempt_at`` says when the retry runs (None: none).
    The history records the failure, the retry time and why there is none. Does not
    commit."""
    subscription = session.get(OrderSubscription, subscription_id, with_for_update=True)
    if subscription is None:
        return None
    subscription.errors_count += 1
    subscription.succeeded_on_last_run = False
    subscription.last_run_at = now
    if retries == 0:
        subscription.occurrencies += 1
    subscription_states.announce(session, subscription, topics.LAST_RUN_FAILED, now)
    delay: timedelta | None = None
    final = failures.why_not_retry(errors)
    if subscription.status in RENEWING:
        try:
            policy = FailurePolicy.parse(subscription.failure_policy)
        except ValueError:
            policy = FailurePolicy()
        no_wallet = failures.needs_wallet_entry(errors)
        if no_wallet is not None:
            subscription_states.park(session, subscription, no_wallet, now)
        elif final is None and retries < len(policy.retry_after):
            delay = policy.retry_after[retries]
            if subscription.status != SubscriptionStatus.ACTIVE:  # waiting is not running
                subscription_states.move(subscription, SubscriptionStatus.ACTIVE)
        else:
            _final_action(session, subscription, policy, now)
    subscription.next_attempt_at = now + delay if delay is not None else None
    history.append(
        session,
        [
            history.Event(
                subscription.id,
                subscription.mode,
                history.EventKind.RENEWAL_FAILED,
                {
                    "order_copy_id": copy_id,
                    "retries": retries,
                    "errors": {key: list(messages) for key, messages in errors.items()},
                    "next_attempt_at": history.moment(subscription.next_attempt_at),
                    "not_retried_because": final,
                    "status": subscription.status.value,
                },
            )
        ],
        now,
    )
    return delay


def _final_action(
    session: Session, subscription: OrderSubscription, policy: FailurePolicy, now: datetime
) -> None:
    final = FINAL_ACTIONS[policy.final_action]
    if final == SubscriptionStatus.INACTIVE:
        subscription_states.deactivate(session, subscription, now)
    elif final == SubscriptionStatus.CANCELLED:
        subscription_states.cancel(session, subscription, now)
    elif final != subscription.status:  # keep_active: running → active, no event
        subscription_states.move(subscription, final)


def skip(session: Session, subscription: OrderSubscription, now: datetime) -> None:
    """Skip the next scheduled run once: ``next_run_at`` moves to the run after it (and
    its reminder with it), recorded in the history. Only an ``active`` subscription skips
    (SubscriptionStateError), and not its last run before ``expires_at``. The caller
    holds the row lock. Does not commit."""
    if subscription.status != SubscriptionStatus.ACTIVE:
        raise subscription_states.SubscriptionStateError(
            subscription.id,
            subscription.status,
            "skipped",
            reason="only an active subscription skips its next run",
        )
    skipped = subscription.next_run_at
    if skipped is None:  # an active subscription always plans a run; none left to skip
        raise subscription_states.SubscriptionStateError(
            subscription.id, subscription.status, "skipped", reason="it plans no run"
        )
    upcoming = next_run(subscription, max(skipped, now))
    if upcoming is None:
        raise subscription_states.SubscriptionStateError(
            subscription.id,
            subscription.status,
            "skipped",
            reason="its next run is its last before expires_at; cancel it instead",
        )
    subscription.next_run_at = upcoming
    subscription_states.plan_alert(subscription)
    history.append(
        session,
        [
            history.Event(
                subscription.id,
                subscription.mode,
                history.EventKind.SKIPPED,
                {"run": history.moment(skipped), "next_run_at": history.moment(upcoming)},
            )
        ],
        now,
    )


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
