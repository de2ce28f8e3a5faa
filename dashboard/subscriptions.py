"""Subscriptions: the list, one with its renewals, and the triggers the API offers on them
(``copying.subscriptions.subscription_states``, the API's own calls)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from copying.subscriptions import renewals as renewing
from copying.subscriptions import subscription_states
from dashboard.copies import is_id
from models import Mode, OrderCopy, OrderSubscription, SubscriptionStatus

PAGE_SIZE = 25
Trigger = Callable[[Session, OrderSubscription, datetime], None]
TRIGGERS: dict[str, Trigger] = {
    "activate": subscription_states.activate,
    "deactivate": subscription_states.deactivate,
    "skip": renewing.skip,
    "cancel": subscription_states.cancel,
}


def page(
    session: Session, mode: Mode, status: str | None, number: int
) -> tuple[list[OrderSubscription], bool]:
    statement = select(OrderSubscription).where(OrderSubscription.mode == mode)
    if status is not None and status in SubscriptionStatus.__members__.values():
        statement = statement.where(OrderSubscription.status == SubscriptionStatus(status))
    rows = list(
        session.scalars(
            statement.order_by(OrderSubscription.created_at.desc(), OrderSubscription.id)
            .offset((number - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE + 1)
        )
    )
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def load(
    session: Session, subscription_id: str, mode: Mode, *, lock: bool = False
) -> OrderSubscription | None:
    if not is_id(subscription_id):
        return None
    found = session.get(
        OrderSubscription, subscription_id, with_for_update=lock, populate_existing=True
    )
    return found if found is not None and found.mode == mode else None


def renewals(session: Session, subscription_id: str, mode: Mode) -> list[OrderCopy]:
    return list(
        session.scalars(
            select(OrderCopy)
            .where(OrderCopy.mode == mode, OrderCopy.order_subscription_id == subscription_id)
            .order_by(OrderCopy.created_at.desc())
            .limit(PAGE_SIZE)
        )
    )


def fields(subscription: OrderSubscription) -> list[tuple[str, Any]]:
    return [
        (column.name, getattr(subscription, attribute.key))
        for attribute in OrderSubscription.__mapper__.column_attrs
        for column in attribute.columns
    ]
