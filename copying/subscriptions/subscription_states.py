"""The order subscription state machine: the only code that assigns a subscription's status.

::

    draft ─activate (or made from a placed order)─► active ─tick─► running ─ended─► active
      │                 ▲ │                 └─renewal failed, policy─► active | inactive | cancelled
      │      activate ─┘ └─deactivate─► inactive
      ├─ activate, tick or a renewal with no usable wallet entry ─► pending ─activate─► active
      └──────────────── cancel (from any but cancelled) ──────────► cancelled

``running`` lasts while a renewal copy is queued or in progress: a failed renewal waiting
for its retry is ``active`` again, with ``next_attempt_at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from copying.errors import CopyInputError
from copying.orders import wallet
from copying.subscriptions import history, schedules
from copying.subscriptions.schedules import Schedule, ScheduleError, period_key
from copying.webhooks import events, topics
from models import (
    CopyStatus,
    CustomerPaymentSource,
    Order,
    OrderCopy,
    OrderStatus,
    OrderSubscription,
    OrderSubscriptionItem,
    SubscriptionStatus,
    new_public_id,
)
from models.subscriptions import OPTIONS_GIVEN

S = SubscriptionStatus
#: Why a subscription whose renewals cost something is parked without any wallet entry.
NO_WALLET_ENTRY = "it has no wallet entry to charge"
SUBSCRIPTION_TRANSITIONS: dict[SubscriptionStatus, frozenset[SubscriptionStatus]] = {
    S.DRAFT: frozenset({S.ACTIVE, S.PENDING, S.CANCELLED}),
    S.PENDING: frozenset({S.ACTIVE, S.INACTIVE, S.CANCELLED}),
    S.INACTIVE: frozenset({S.ACTIVE, S.PENDING, S.CANCELLED}),
    S.ACTIVE: frozenset({S.RUNNING, S.PENDING, S.INACTIVE, S.CANCELLED}),
    S.RUNNING: frozenset({S.ACTIVE, S.PENDING, S.INACTIVE, S.CANCELLED, S.RUNNING}),
    S.CANCELLED: frozenset(),
}
RENEWING = frozenset({S.ACTIVE, S.RUNNING})

FINAL_ACTIONS = {"keep_active": S.ACTIVE, "deactivate": S.INACTIVE, "cancel": S.CANCELLED}
#: Commerce Layer's behaviour, the default: no retry within the period, stay active, the
#: next period renews as scheduled.
DEFAULT_RETRY_AFTER: tuple[timedelta, ...] = ()
DEFAULT_FINAL_ACTION = "keep_active"
#: The dunning schedule merchants opt into (and every subscription had before revision
#: 0015): retry after 1, 3 and 7 days, then deactivate.
DUNNING = {"retry_after_seconds": [86400, 259200, 604800], "final_action": "deactivate"}
#: Hours before a run its reminder goes out (Commerce Layer's bounds and default).
ALERT_PERIOD_HOURS = (1, 720)
DEFAULT_ALERT_PERIOD = 1


class SubscriptionStateError(ValueError):
    """The subscription's status does not allow what was asked."""

    def __init__(self, subscription_id: str, status: str, wanted: str, *, reason: str = "") -> None:
        super().__init__(
            f"order subscription {subscription_id} is {status}; it cannot be {wanted}"
            + (f": {reason}" if reason else "")
        )
        self.status = status


def check_move(
    subscription_id: str, status: SubscriptionStatus, to: SubscriptionStatus, wanted: str = ""
) -> SubscriptionStatus:
    """``to``, when the transition table allows it; for set-based writers (the tick)."""
    if to not in SUBSCRIPTION_TRANSITIONS[status]:
        raise SubscriptionStateError(subscription_id, status, wanted or to.value)
    return to


def active_again(status: ColumnElement[str]) -> ColumnElement[str]:
    """For set-based writers: a ``running`` subscription's status after a renewal
    completed (``active``); any other status stays."""
    to = check_move("", SubscriptionStatus.RUNNING, SubscriptionStatus.ACTIVE)
    return case((status == SubscriptionStatus.RUNNING, to), else_=status)


def move(subscription: OrderSubscription, to: SubscriptionStatus, *, wanted: str = "") -> None:
    subscription.status = check_move(subscription.id, subscription.status, to, wanted)


def announce(session: Session, subscription: OrderSubscription, topic: str, now: datetime) -> None:
    """Write the webhook events ``topic`` owes of ``subscription``. Does not commit."""
    events.record(session, [events.Change(subscription.id, subscription.mode, topic)], now)


def problem_with_wallet(
    session: Session, subscription: OrderSubscription, today: date
) -> str | None:
    """Why the subscription has no wallet entry its renewals could charge today, or None.
    One that does not place its targets needs none; one without an entry of its own
    charges its source order's."""
    if not subscription.place_target_order:
        return None
    entry_id = subscription.customer_payment_source_id
    if entry_id is None:
        source = session.get(Order, subscription.source_order_id)
        entry_id = source.customer_payment_source_id if source is not None else None
    if entry_id is None:
        if renews_free(session, subscription.id, subscription.source_order_id):
            return None
        return NO_WALLET_ENTRY
    entry = session.get(CustomerPaymentSource, entry_id)
    return wallet.problem_with_entry(entry, entry_id, subscription, today)


def renews_free(session: Session, subscription_id: str, source_order_id: str) -> bool:
    """Whether a renewal costs nothing, and so needs no wallet entry (a free trial, a gift):
    its items' amounts sum to zero, or, renewing its source order whole (no items), that
    order's total is zero. (Items summing below zero, negative adjustments, make an order
    no one can place: not free.) A renewal that turns out to cost something after all (its
    prices changed) fails for want of a payment source, as a copy does."""
    item = OrderSubscriptionItem
    count, amount = session.execute(
        select(
            func.count(item.id), func.coalesce(func.sum(item.quantity * item.unit_amount_cents), 0)
        ).where(item.order_subscription_id == subscription_id)
    ).one()
    if count:
        return bool(amount == 0)
    total = session.scalar(select(Order.total_amount_cents).where(Order.id == source_order_id))
    return total == 0


def plan_alert(subscription: OrderSubscription) -> None:
    """Owe the reminder of the run at ``next_run_at`` (``renewal_alert_period`` hours
    before it), or none while nothing renews."""
    upcoming = subscription.next_run_at
    subscription.renewal_alert_at = (
        upcoming - timedelta(hours=subscription.renewal_alert_period)
        if upcoming is not None and subscription.status in RENEWING
        else None
    )


def park(session: Session, subscription: OrderSubscription, reason: str, now: datetime) -> None:
    """Wait for a usable wallet entry (``pending``): nothing renews until one is attached
    and ``activate`` is asked for. Does not commit."""
    move(subscription, S.PENDING, wanted="parked as pending")
    subscription.renewal_alert_at = None
    subscription.next_attempt_at = None
    announce(session, subscription, topics.SUBSCRIPTION_PENDING, now)
    history.append(
        session,
        [
            history.Event(
                subscription.id, subscription.mode, history.EventKind.PENDING, {"reason": reason}
            )
        ],
        now,
    )


def activate(session: Session, subscription: OrderSubscription, now: datetime) -> None:
    """Start (or restart) renewing from now on: a next run still ahead is kept, one gone
    by is replaced by the first scheduled run from now (missed periods are not renewed).
    Starting fixes ``starts_at`` (the schedule's anchor) when it was not given.
    Without a wallet entry its renewals could charge, the subscription is ``pending``
    instead (and a pending one stays so: SubscriptionStateError).
    Raises CopyInputError on ``frequency`` when the one stored no longer passes
    ``check_frequency`` (stored before it got stricter: the tick deactivates such rows)."""
    if subscription.status in RENEWING:
        raise SubscriptionStateError(
            subscription.id, subscription.status, "activated", reason="it renews already"
        )
    try:
        schedules.check_frequency(subscription.frequency)
    except ScheduleError as error:
        raise CopyInputError("frequency", f"{error}; set a valid frequency first") from None
    if subscription.starts_at is None:
        subscription.starts_at = now
    upcoming = subscription.next_run_at
    if upcoming is None or upcoming < now:
        upcoming = planned_run(subscription.frequency, subscription.starts_at, now)
    if subscription.expires_at is not None and upcoming >= subscription.expires_at:
        raise SubscriptionStateError(
            subscription.id,
            subscription.status,
            "activated",
            reason=f"it expires at {period_key(subscription.expires_at)}, before its next run",
        )
    subscription.next_run_at = upcoming
    problem = problem_with_wallet(session, subscription, now.date())
    if problem is not None:
        if subscription.status == S.PENDING:
            raise SubscriptionStateError(
                subscription.id,
                subscription.status,
                "activated",
                reason=f"{problem}; attach a usable wallet entry first",
            )
        park(session, subscription, problem, now)
        return
    move(subscription, S.ACTIVE, wanted="activated")
    plan_alert(subscription)
    announce(session, subscription, topics.SUBSCRIPTION_ACTIVATE, now)


def deactivate(session: Session, subscription: OrderSubscription, now: datetime) -> None:
    """Stop renewing; ``next_run_at`` stays as the run planned, for activate to keep."""
    move(subscription, S.INACTIVE, wanted="deactivated")
    subscription.renewal_alert_at = None
    announce(session, subscription, topics.SUBSCRIPTION_DEACTIVATE, now)


def cancel(session: Session, subscription: OrderSubscription, now: datetime) -> None:
    move(subscription, S.CANCELLED, wanted="cancelled")
    subscription.next_run_at = None
    subscription.renewal_alert_at = None
    subscription.next_attempt_at = None
    announce(session, subscription, topics.SUBSCRIPTION_CANCEL, now)


def delete(session: Session, subscription: OrderSubscription) -> None:
    """Delete the subscription (its renewals' copies stay, no longer linked to it); not
    while one of its renewal copies is queued, running or waiting for its retry. Does not
    commit."""
    in_flight = session.scalar(
        select(OrderCopy.id)
        .where(
            OrderCopy.order_subscription_id == subscription.id,
            OrderCopy.status.in_((CopyStatus.PENDING, CopyStatus.IN_PROGRESS)),
        )
        .limit(1)
    )
    if subscription.status == S.RUNNING or in_flight is not None:
        raise SubscriptionStateError(
            subscription.id,
            subscription.status,
            "deleted",
            reason=f"a renewal is in flight{f' (order copy {in_flight})' if in_flight else ''}; "
            "deactivate it, or delete it once the renewal ended",
        )
    session.delete(subscription)


@dataclass(frozen=True)
class FailurePolicy:
    """What a failed renewal does: retry the same copy after each delay (unless retrying
    cannot fix it: ``failures.why_not_retry``), then the final action. The default is
    Commerce Layer's: no retry, stay active."""

    retry_after: tuple[timedelta, ...] = DEFAULT_RETRY_AFTER
    final_action: str = DEFAULT_FINAL_ACTION

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> FailurePolicy:
        """From ``{"retry_after_seconds": [86400, …], "final_action": "deactivate"}``; a key
        left out takes the default (no retry; ``keep_active``)."""
        raw = raw or {}
        unknown = set(raw) - {"retry_after_seconds", "final_action"}
        if unknown:
            raise CopyInputError("failure_policy", f"unknown keys {sorted(unknown)}")
        delays = raw.get("retry_after_seconds")
        retry_after: tuple[timedelta, ...]
        if delays is None:
            retry_after = DEFAULT_RETRY_AFTER
        elif (
            not isinstance(delays, list)
            or len(delays) > 10
            or not all(
                isinstance(d, int) and not isinstance(d, bool) and 60 <= d <= 90 * 86400
                for d in delays
            )
        ):
            raise CopyInputError(
                "failure_policy",
                "retry_after_seconds must be a list of at "
                "most 10 whole numbers from 60 to 7776000 (90 days)",
            )
        else:
            retry_after = tuple(timedelta(seconds=d) for d in delays)
        action = raw.get("final_action", DEFAULT_FINAL_ACTION)
        if action not in FINAL_ACTIONS:
            raise CopyInputError(
                "failure_policy", f"final_action must be one of {', '.join(FINAL_ACTIONS)}"
            )
        return cls(retry_after, action)

    def as_json(self) -> dict[str, Any]:
        return {
            "retry_after_seconds": [int(d.total_seconds()) for d in self.retry_after],
            "final_action": self.final_action,
        }


#: The times a subscription may name (its schedule must stay computable, years ahead).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def check_moment(field: str, value: datetime | None) -> None:
    if value is not None and not EARLIEST <= value < LATEST:
        raise CopyInputError(field, "must be a time from 2000 to 2099")


def planned_run(frequency: str, starts_at: datetime, now: datetime) -> datetime:
    """The first renewal to plan: the first scheduled run after both the start and now.

    The source order stands for the run at the start (a subscription made from an
    order just placed renews it one period later, never at once)."""
    return Schedule(frequency, starts_at).next_after(max(starts_at, now))


def check_frequency(frequency: str) -> None:
    try:
        schedules.check_frequency(frequency)
    except ScheduleError as error:
        raise CopyInputError("frequency", str(error)) from None


def check_dates(subscription: OrderSubscription, changed: Iterable[str] = ()) -> None:
    """``expires_at`` after ``starts_at``; a ``next_run_at`` set (named in ``changed``)
    before ``expires_at``. An ``expires_at`` before the planned run simply ends the
    renewals."""
    starts, expires = subscription.starts_at, subscription.expires_at
    if starts is not None and expires is not None and expires <= starts:
        raise CopyInputError(
            "expires_at",
            f"must be after starts_at ({period_key(starts)}), not {period_key(expires)}",
        )
    upcoming = subscription.next_run_at
    if "next_run_at" in changed and upcoming and expires and upcoming >= expires:
        raise CopyInputError(
            "next_run_at",
            f"{period_key(upcoming)} is not before expires_at ({period_key(expires)})",
        )


def check_next_run_at(next_run_at: datetime | None, now: datetime) -> None:
    if next_run_at is not None and next_run_at <= now:
        raise CopyInputError(
            "next_run_at",
            f"must be in the future (it is {period_key(now)}), not {period_key(next_run_at)}",
        )


def check_source_order(source: Order) -> None:
    """A subscription renews an order its customer placed."""
    if source.status not in (OrderStatus.PLACED, OrderStatus.APPROVED):
        raise CopyInputError(
            "source_order",
            f"order {source.id} is {source.status}; a subscription renews a placed "
            "or approved order",
        )
    if source.customer_id is None:
        raise CopyInputError("source_order", f"order {source.id} has no customer to renew it for")


def check_wallet_entry(
    entry: CustomerPaymentSource | None,
    entry_id: str,
    subscription: OrderSubscription,
    today: date,
) -> None:
    """The wallet entry renewals are to charge: the subscription's customer's, in its mode,
    usable today (``wallet.problem_with_entry``, as a CopyInputError)."""
    problem = wallet.problem_with_entry(entry, entry_id, subscription, today)
    if problem is not None:
        raise CopyInputError("customer_payment_source", problem)


def check_policy(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The failure policy as stored: every key spelled out (defaults filled in)."""
    return FailurePolicy.parse(raw).as_json()


def create(
    session: Session,
    source: Order,
    *,
    frequency: str,
    now: datetime,
    customer_id: str | None = None,
    wallet_entry_id: str | None = None,
    starts_at: datetime | None = None,
    expires_at: datetime | None = None,
    next_run_at: datetime | None = None,
    place_target_order: bool = True,
    catch_up: bool = False,
    failure_policy: Mapping[str, Any] | None = None,
    activate_by_source_order: bool = True,
    renewal_alert_period: int = DEFAULT_ALERT_PERIOD,
    options: Any = None,
    reference: str | None = None,
    reference_origin: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> OrderSubscription:
    """A subscription renewing ``source`` (in its mode), added to the session: ``active``
    at once with ``activate_by_source_order`` (the placed source is its first run;
    ``pending`` if it has no usable wallet entry), else a ``draft`` that renews nothing
    before ``activate``.

    Its customer (and customer email) is the source's (naming another is an error); its
    wallet entry is the one given, else the one the source was paid with. ``starts_at``
    (the schedule's anchor) defaults to now; ``next_run_at`` to ``planned_run``.
    ``options`` (``{"place_target_order": …}``) overrides ``place_target_order``.
    Raises CopyInputError naming the field. Does not commit.
    """
    check_source_order(source)
    if customer_id is not None and customer_id != source.customer_id:
        raise CopyInputError(
            "customer",
            f"customer {customer_id} is not order {source.id}'s customer "
            f"({source.customer_id}); leave it out to take the order's",
        )
    check_frequency(frequency)
    for field, moment in (
        ("starts_at", starts_at),
        ("expires_at", expires_at),
        ("next_run_at", next_run_at),
    ):
        check_moment(field, moment)
    check_next_run_at(next_run_at, now)
    check_alert_period(renewal_alert_period)
    if options is not None:
        place_target_order = check_options(options).get("place_target_order", place_target_order)
    subscription = OrderSubscription(
        id=new_public_id(),
        mode=source.mode,
        status=S.DRAFT,
        source_order_id=source.id,
        customer_id=source.customer_id,
        customer_email=source.customer_email,
        customer_payment_source_id=wallet_entry_id or source.customer_payment_source_id,
        frequency=frequency,
        starts_at=starts_at or now,
        expires_at=expires_at,
        place_target_order=place_target_order,
        catch_up=catch_up,
        failure_policy=check_policy(failure_policy),
        activate_by_source_order=activate_by_source_order,
        renewal_alert_period=renewal_alert_period,
        occurrencies=0,
        errors_count=0,
        reference=reference,
        reference_origin=reference_origin,
        metadata_=dict(metadata or {}),
    )
    subscription.next_run_at = next_run_at or planned_run(
        frequency, subscription.starts_at or now, now
    )
    check_dates(subscription, {"next_run_at"} if next_run_at else ())
    if wallet_entry_id is not None:
        entry = session.get(CustomerPaymentSource, wallet_entry_id)
        check_wallet_entry(entry, wallet_entry_id, subscription, now.date())
    session.add(subscription)
    announce(session, subscription, topics.SUBSCRIPTION_CREATE, now)
    if activate_by_source_order:
        try:
            activate(session, subscription, now)
        except SubscriptionStateError as error:  # its last run is before its next one
            raise CopyInputError("expires_at", str(error)) from None
    return subscription


def check_alert_period(hours: object) -> None:
    low, high = ALERT_PERIOD_HOURS
    if not isinstance(hours, int) or isinstance(hours, bool) or not low <= hours <= high:
        raise CopyInputError(
            "renewal_alert_period", f"must be a whole number of hours from {low} to {high}"
        )


#: The options a subscription's renewals take, and their types.
OPTIONS: dict[str, type] = {"place_target_order": bool}


def check_options(raw: object) -> dict[str, Any]:
    """``options`` as given: an object of known options, each of its type."""
    if not isinstance(raw, Mapping):
        raise CopyInputError("options", 'must be an object, e.g. {"place_target_order": false}')
    unknown = set(raw) - set(OPTIONS)
    if unknown:
        raise CopyInputError(
            "options", f"unknown options {sorted(unknown)}; known: {', '.join(OPTIONS)}"
        )
    for name, value in raw.items():
        if not isinstance(value, OPTIONS[name]):
            raise CopyInputError("options", f"{name} must be a {OPTIONS[name].__name__}")
    return dict(raw)


#: What a cancelled subscription still lets change.
ALWAYS_EDITABLE = frozenset({"reference", "reference_origin", "metadata"})


def check_editable(subscription: OrderSubscription, changing: Iterable[str]) -> None:
    """Before an update: a cancelled subscription keeps its terms."""
    terms = set(changing) - ALWAYS_EDITABLE
    if terms and subscription.status == S.CANCELLED:
        raise SubscriptionStateError(
            subscription.id,
            subscription.status,
            "changed",
            reason=f"{', '.join(sorted(terms))} can change only until it is cancelled",
        )


def apply_changes(
    session: Session, subscription: OrderSubscription, changed: set[str], now: datetime
) -> None:
    """Check a subscription whose fields ``changed`` were just set, and follow them up:
    a new frequency plans the next run on its schedule (unless ``next_run_at`` was set
    with it); a failure policy is stored with its defaults; ``options`` set the columns
    they name; a new next run owes its reminder. Raises CopyInputError. Does not
    commit."""
    if "frequency" in changed:
        check_frequency(subscription.frequency)
        if "next_run_at" not in changed:
            subscription.next_run_at = planned_run(
                subscription.frequency, subscription.starts_at or now, now
            )
    check_moment("expires_at", subscription.expires_at)
    if "next_run_at" in changed:
        check_moment("next_run_at", subscription.next_run_at)
        if subscription.next_run_at is None:
            raise CopyInputError("next_run_at", "cannot be emptied; set a time in the future")
        check_next_run_at(subscription.next_run_at, now)
    if "failure_policy" in changed:
        subscription.failure_policy = check_policy(subscription.failure_policy)
    if "options" in changed:
        given = check_options(getattr(subscription, OPTIONS_GIVEN, None))
        subscription.place_target_order = given.get(
            "place_target_order", subscription.place_target_order
        )
    if "renewal_alert_period" in changed:
        check_alert_period(subscription.renewal_alert_period)
    check_dates(subscription, changed)
    if changed & {"next_run_at", "frequency"} or (
        # A new period moves a reminder still owed; one already sent is not sent again.
        "renewal_alert_period" in changed and subscription.renewal_alert_at is not None
    ):
        plan_alert(subscription)
    entry_id = subscription.customer_payment_source_id
    if "customer_payment_source" in changed and entry_id is not None:
        entry = session.get(CustomerPaymentSource, entry_id)
        check_wallet_entry(entry, entry_id, subscription, now.date())


def follow_fix(session: Session, order: Order, now: datetime) -> str | None:
    """After ``order`` was placed by hand: when it is the target of a failed renewal and
    was paid with another usable wallet entry of the subscription's customer, the
    subscription charges that entry from now on (recorded in its history). Returns the
    subscription switched, or None. The caller holds the order's row lock. Does not
    commit."""
    entry_id = order.customer_payment_source_id
    if entry_id is None:
        return None
    found = session.execute(
        select(OrderCopy.id, OrderCopy.order_subscription_id)
        .where(
            OrderCopy.target_order_id == order.id,
            OrderCopy.status == CopyStatus.FAILED,
            OrderCopy.order_subscription_id.is_not(None),
        )
        .limit(1)
    ).first()
    if found is None:
        return None
    copy_id, subscription_id = found
    subscription = session.get(OrderSubscription, subscription_id, with_for_update=True)
    if (
        subscription is None
        or subscription.status == S.CANCELLED
        or subscription.customer_payment_source_id == entry_id
    ):
        return None
    entry = session.get(CustomerPaymentSource, entry_id)
    if wallet.problem_with_entry(entry, entry_id, subscription, now.date()) is not None:
        return None
    previous = subscription.customer_payment_source_id
    subscription.customer_payment_source_id = entry_id
    history.append(
        session,
        [
            history.Event(
                subscription.id,
                subscription.mode,
                history.EventKind.WALLET_SWITCHED,
                {
                    "from": previous,
                    "to": entry_id,
                    "order_id": order.id,
                    "order_copy_id": copy_id,
                },
            )
        ],
        now,
    )
    return subscription.id
