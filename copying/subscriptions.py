"""The order subscription state machine: the only code that assigns a subscription's status.

::

    draft ─activate─► active ─tick─► running ─renewal completed─► active
      │                 ▲ │                 └─renewal failed, policy─► active | inactive | cancelled
      │      activate ─┘ └─deactivate─► inactive
      └──────────────── cancel (from any but cancelled) ──────────► cancelled
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from copying.errors import CopyInputError
from copying.schedules import Schedule
from models import OrderSubscription, SubscriptionStatus

S = SubscriptionStatus
SUBSCRIPTION_TRANSITIONS: dict[SubscriptionStatus, frozenset[SubscriptionStatus]] = {
    S.DRAFT: frozenset({S.ACTIVE, S.CANCELLED}),
    S.INACTIVE: frozenset({S.ACTIVE, S.CANCELLED}),
    S.ACTIVE: frozenset({S.RUNNING, S.INACTIVE, S.CANCELLED}),
    S.RUNNING: frozenset({S.ACTIVE, S.INACTIVE, S.CANCELLED, S.RUNNING}),
    S.CANCELLED: frozenset(),
}
RENEWING = frozenset({S.ACTIVE, S.RUNNING})

FINAL_ACTIONS = {"keep_active": S.ACTIVE, "deactivate": S.INACTIVE, "cancel": S.CANCELLED}
DEFAULT_RETRY_AFTER = (timedelta(days=1), timedelta(days=3), timedelta(days=7))
DEFAULT_FINAL_ACTION = "deactivate"


class SubscriptionStateError(ValueError):
    def __init__(self, subscription_id: str, status: str, wanted: str) -> None:
        super().__init__(f"order subscription {subscription_id} is {status}; it cannot be {wanted}")
        self.status = status


def move(subscription: OrderSubscription, to: SubscriptionStatus, *, wanted: str = "") -> None:
    if to not in SUBSCRIPTION_TRANSITIONS[subscription.status]:
        raise SubscriptionStateError(subscription.id, subscription.status, wanted or to.value)
    subscription.status = to


def activate(subscription: OrderSubscription, now: datetime) -> None:
    """Start (or restart) renewing: the next run is the first one from now on."""
    move(subscription, S.ACTIVE, wanted="activated")
    schedule = Schedule(subscription.frequency, subscription.starts_at or now)
    first = schedule.first()
    subscription.next_run_at = first if first >= now else schedule.next_after(now)


def deactivate(subscription: OrderSubscription) -> None:
    move(subscription, S.INACTIVE, wanted="deactivated")


def cancel(subscription: OrderSubscription) -> None:
    move(subscription, S.CANCELLED, wanted="cancelled")
    subscription.next_run_at = None


@dataclass(frozen=True)
class FailurePolicy:
    """What a failed renewal does: retry the same copy after each delay, then the final action."""

    retry_after: tuple[timedelta, ...] = DEFAULT_RETRY_AFTER
    final_action: str = DEFAULT_FINAL_ACTION

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> FailurePolicy:
        """From ``{"retry_after_seconds": [86400, …], "final_action": "deactivate"}``."""
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
