"""A subscription's history: one row per fact that its columns do not keep (a run
skipped, a move to ``pending`` and why, a wallet entry switched to, a renewal failed and
when it is retried, a reminder sent); never updated."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from models import Mode
from models.dialects import insert_rows
from models.subscriptions import OrderSubscriptionEvent


class EventKind(enum.StrEnum):
    """What a subscription's history records."""

    SKIPPED = "skipped"
    PENDING = "pending"
    WALLET_SWITCHED = "wallet_switched"
    RENEWAL_FAILED = "renewal_failed"
    RENEWAL_ALERT = "renewal_alert"


EVENTS: Table = OrderSubscriptionEvent.__table__  # type: ignore[assignment]


class Event(NamedTuple):
    order_subscription_id: str
    mode: Mode
    kind: EventKind
    data: dict[str, Any]


def moment(value: datetime | None) -> str | None:
    """A time as the history stores it (ISO 8601, UTC)."""
    return value.isoformat() if value is not None else None


def append(session: Session, events: Sequence[Event], now: datetime) -> None:
    """Append ``events`` in one statement. Does not commit."""
    insert_rows(
        session,
        EVENTS,
        [{**event._asdict(), "created_at": now, "updated_at": now} for event in events],
    )


def of(session: Session, subscription_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The subscription's history, oldest first: (kind, data) each."""
    return [
        (kind, data)
        for kind, data in session.execute(
            select(OrderSubscriptionEvent.kind, OrderSubscriptionEvent.data)
            .where(OrderSubscriptionEvent.order_subscription_id == subscription_id)
            .order_by(OrderSubscriptionEvent.id)
        )
    ]
