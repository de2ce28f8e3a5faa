"""The order state machine: the only code that assigns an order's statuses.

::

    draft ─► pending ─► placed ─► approved
                          │          │
                          └──────────┴─► cancelled
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import Table, case, update
from sqlalchemy.orm import Session

from models import (
    FulfillmentStatus,
    ItemType,
    Order,
    OrderStatus,
    PaymentStatus,
)


class LineLike(Protocol):
    """What placing reads of a line item (a ``LineItem`` or a ``targets.Line``)."""

    @property
    def item_type(self) -> str: ...
    @property
    def sku_code(self) -> str | None: ...


class SkuLike(Protocol):
    """What placing reads of a SKU (a ``Sku`` or a ``targets.SkuTerms``)."""

    @property
    def do_not_ship(self) -> bool: ...


Lines = Sequence[LineLike]
Skus = Mapping[str, SkuLike]

ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.DRAFT: frozenset({OrderStatus.PENDING}),
    OrderStatus.PENDING: frozenset({OrderStatus.PLACED}),
    OrderStatus.PLACED: frozenset({OrderStatus.APPROVED, OrderStatus.CANCELLED}),
    OrderStatus.APPROVED: frozenset({OrderStatus.CANCELLED}),
    OrderStatus.CANCELLED: frozenset(),
}
ORDERS: Table = Order.__table__  # type: ignore[assignment]
PLACEABLE = frozenset({OrderStatus.DRAFT, OrderStatus.PENDING})
CANCELLABLE = frozenset({OrderStatus.PLACED, OrderStatus.APPROVED})
UNSHIPPED = frozenset({FulfillmentStatus.UNFULFILLED, FulfillmentStatus.NOT_REQUIRED})


class OrderTransitionError(RuntimeError):
    """A caller skipped the ``problems_*`` function: a bug, not a business error."""


def _move(order: Order, to: OrderStatus) -> None:
    if to not in ORDER_TRANSITIONS[order.status]:
        raise OrderTransitionError(f"order {order.id}: {order.status} → {to} is not allowed")
    order.status = to


def initial_status(has_lines: bool) -> OrderStatus:
    """A new order is ``pending`` once it has something to place, ``draft`` before."""
    return OrderStatus.PENDING if has_lines else OrderStatus.DRAFT


def open_order(order: Order) -> None:
    """Move a ``draft`` that now has line items to ``pending``; other statuses stay."""
    if order.status == OrderStatus.DRAFT:
        _move(order, OrderStatus.PENDING)


def ships(lines: Iterable[LineLike], skus: Skus) -> bool:
    """Whether anything in the order needs a shipping address."""
    for line in lines:
        if line.item_type == ItemType.SKUS:
            sku = skus.get(line.sku_code or "")
            if sku is None or not sku.do_not_ship:
                return True
    return False


def problems_placing(order: Order, lines: Lines, skus: Skus) -> list[str]:
    """Why ``order`` cannot be placed (empty when it can). Stock is checked by reserving."""
    problems = []
    if order.status not in PLACEABLE:
        problems.append(
            f"order {order.id} is {order.status}, only draft or pending orders can be placed"
        )
    if not lines:
        problems.append("has no line items")
    if not order.customer_email:
        problems.append("customer_email is missing")
    if order.billing_address_id is None:
        problems.append("billing_address is missing")
    if order.shipping_address_id is None and ships(lines, skus):
        problems.append("shipping_address is missing (some items ship)")
    if order.total_amount_cents < 0:
        problems.append(f"total is negative ({order.total_amount_cents} cents)")
    if order.total_amount_cents > 0 and not order.payment_source_token:
        problems.append("payment_source is missing (the total is not zero)")
    return problems


def place(order: Order, lines: Lines, skus: Skus, now: datetime, *, authorized: bool) -> None:
    """Move a checked order to ``placed``. Caller reserved the stock and holds the payment."""
    _move(order, OrderStatus.PLACED)
    order.placed_at = now
    order.payment_status = PaymentStatus.AUTHORIZED if authorized else PaymentStatus.FREE
    order.fulfillment_status = (
        FulfillmentStatus.UNFULFILLED if ships(lines, skus) else FulfillmentStatus.NOT_REQUIRED
    )


def place_many_unloaded(
    session: Session, shipping: Mapping[str, bool], now: datetime, *, authorized: bool
) -> bool:
    """:func:`place` for many orders not loaded in ``session`` (``shipping``: whether each
    order's items ship, by id): one compare-and-set UPDATE from a placeable status (no
    read first). False when one was no longer placeable: the caller must
    roll back. Does not commit."""
    fulfillment = case(
        (
            ORDERS.c.id.in_([i for i, ships in shipping.items() if ships]),
            FulfillmentStatus.UNFULFILLED,
        ),
        else_=FulfillmentStatus.NOT_REQUIRED,
    )
    updated = session.execute(
        update(ORDERS)
        .where(ORDERS.c.id.in_(list(shipping)), ORDERS.c.status.in_(PLACEABLE))
        .values(
            status=OrderStatus.PLACED,
            placed_at=now,
            payment_status=PaymentStatus.AUTHORIZED if authorized else PaymentStatus.FREE,
            fulfillment_status=fulfillment,
        )
    )
    return bool(updated.rowcount == len(shipping))  # type: ignore[attr-defined]


def problems_cancelling(order: Order) -> list[str]:
    """Why ``order`` cannot be cancelled (empty when it can)."""
    if order.status not in CANCELLABLE:
        return [
            f"order {order.id} is {order.status}, only placed or approved orders can be cancelled"
        ]
    if order.fulfillment_status not in UNSHIPPED:
        return [
            f"order {order.id} is {order.fulfillment_status.replace('_', ' ')}, "
            "only unfulfilled orders can be cancelled"
        ]
    return []


def cancel(order: Order, now: datetime) -> None:
    """Move a checked order to ``cancelled``. Caller releases stock and voids payments."""
    _move(order, OrderStatus.CANCELLED)
    order.cancelled_at = now
    if order.payment_status == PaymentStatus.AUTHORIZED:
        order.payment_status = PaymentStatus.VOIDED


def pay(order: Order) -> None:
    """Its authorized payment is captured in full: ``paid``."""
    order.payment_status = PaymentStatus.PAID


def refund(order: Order, captured_cents: int, refunded_cents: int) -> None:
    """Some of what was captured is given back: ``partially_refunded``, or ``refunded``
    once all of it is."""
    order.payment_status = (
        PaymentStatus.REFUNDED
        if refunded_cents >= captured_cents
        else PaymentStatus.PARTIALLY_REFUNDED
    )


def void_payment(order: Order) -> None:
    """Its authorized payment is released (the order stays as it is): ``voided``."""
    order.payment_status = PaymentStatus.VOIDED


def approve(order: Order) -> None:
    _move(order, OrderStatus.APPROVED)
