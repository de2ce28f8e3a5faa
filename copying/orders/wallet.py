"""Wallet reuse: charge the target order to the entry the source order used."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from copying.errors import InUseError
from copying.orders import order_states
from models import (
    CustomerPaymentSource,
    Mode,
    Order,
    OrderSubscription,
    SubscriptionStatus,
)


class Payer(Protocol):
    """Whose wallet entry it must be: an order, or a subscription renewing one."""

    @property
    def mode(self) -> Mode: ...
    @property
    def customer_id(self) -> str | None: ...


class WalletPayer(Payer, Protocol):
    """A source order, as far as reusing its wallet entry goes."""

    @property
    def customer_payment_source_id(self) -> str | None: ...


class Entry(Payer, Protocol):
    """A wallet entry, as far as telling whether it can pay goes (a row or its columns)."""

    @property
    def disabled(self) -> bool: ...
    @property
    def expires_on(self) -> date | None: ...


def problem_with_entry(
    entry: Entry | None, entry_id: str, source: Payer, today: date
) -> str | None:
    """Why the wallet entry cannot be charged (again) for ``source``, or None when it can."""
    if entry is None or entry.mode != source.mode:
        return f"wallet entry {entry_id} no longer exists"
    if entry.customer_id != source.customer_id:
        return f"wallet entry {entry_id} belongs to another customer"
    if entry.disabled:
        return f"wallet entry {entry_id} is disabled"
    if entry.expires_on is not None and entry.expires_on < today:
        return f"wallet entry {entry_id} expired on {entry.expires_on.isoformat()}"
    return None


def entry_to_reuse(
    session: Session, source: WalletPayer, override_id: str | None, today: date
) -> tuple[CustomerPaymentSource | None, str | None]:
    """The wallet entry to charge the target to (``override_id``, else the source's), or why
    it cannot be charged. ``(None, None)``: the source was paid without the wallet, which
    leaves nothing to reuse and is no error."""
    entry_id = override_id or source.customer_payment_source_id
    if entry_id is None:
        return None, None
    entry = session.get(CustomerPaymentSource, entry_id)
    problem = problem_with_entry(entry, entry_id, source, today)
    if problem is not None or entry is None:
        return None, problem or f"wallet entry {entry_id} no longer exists"
    return entry, None


def payment_fields(entry: CustomerPaymentSource | None) -> dict[str, str | None]:
    """An order's columns that charge it to ``entry`` (all None: to no wallet entry)."""
    return {
        "customer_payment_source_id": entry.id if entry else None,
        "payment_method": entry.payment_method if entry else None,
        "payment_gateway": entry.gateway if entry else None,
        "payment_source_token": entry.payment_source_token if entry else None,
    }


def attach_wallet_entry(order: Order, entry: CustomerPaymentSource) -> None:
    """Use ``entry`` as ``order``'s payment source (the API's ``_customer_payment_source_id``)."""
    for column, value in payment_fields(entry).items():
        setattr(order, column, value)


class Charged(Payer, Protocol):
    """An order as far as paying for it from the wallet goes (an ``Order`` or its row)."""

    @property
    def id(self) -> str: ...
    @property
    def customer_payment_source_id(self) -> str | None: ...
    @property
    def payment_source_token(self) -> str | None: ...
    @property
    def payment_gateway(self) -> str | None: ...


def problem_paying(session: Session, order: Charged, today: date) -> str | None:
    """Why the wallet entry ``order`` is charged to cannot pay for it now (placing time),
    or None; see :func:`problems_paying`."""
    return problems_paying(session, [order], today).get(order.id)


def problems_paying(session: Session, orders: Sequence[Charged], today: date) -> dict[str, str]:
    """Why the wallet entry each order is charged to cannot pay for it now (placing time),
    by order id, for those that cannot: it must still be the same customer's, in the same
    mode, enabled, not expired, and the payment source the order was given. Orders not
    paid from the wallet have nothing to check. One query."""
    wanted = {o.customer_payment_source_id for o in orders} - {None}
    if not wanted:
        return {}
    entries = {
        entry.id: entry
        for entry in session.scalars(
            select(CustomerPaymentSource).where(CustomerPaymentSource.id.in_(wanted))
        )
    }
    problems = {}
    for order in orders:
        entry_id = order.customer_payment_source_id
        if entry_id is None:
            continue
        entry = entries.get(entry_id)
        problem = problem_with_entry(entry, entry_id, order, today)
        if (
            problem is None
            and entry is not None
            and (
                entry.payment_source_token != order.payment_source_token
                or entry.gateway != order.payment_gateway
            )
        ):
            problem = f"wallet entry {entry_id} no longer holds the order's payment source"
        if problem is not None:
            problems[order.id] = problem
    return problems


def check_deletable(session: Session, entry_id: str) -> None:
    """Raise InUseError if an order that may still be placed (draft or pending) or a
    subscription not cancelled is charged to the wallet entry: it would be charged to
    nothing. Placed and cancelled orders keep naming it, as a record of what paid."""
    order_id = session.scalar(
        select(Order.id)
        .where(
            Order.customer_payment_source_id == entry_id,
            Order.status.in_(order_states.PLACEABLE),
        )
        .limit(1)
    )
    if order_id is not None:
        raise InUseError(
            f"wallet entry {entry_id} pays for order {order_id}, which is not placed yet;"
            " give that order another payment source first"
        )
    subscription_id = session.scalar(
        select(OrderSubscription.id)
        .where(
            OrderSubscription.customer_payment_source_id == entry_id,
            OrderSubscription.status != SubscriptionStatus.CANCELLED,
        )
        .limit(1)
    )
    if subscription_id is not None:
        raise InUseError(
            f"wallet entry {entry_id} pays for order subscription {subscription_id};"
            " give it another wallet entry or cancel it first"
        )
