"""Order subscription items: what a subscription in automatic mode renews.

A subscription with items renews only them, as Commerce Layer's automatic mode does: each
renewal's target order gets the items' SKUs, quantities and unit amounts (frozen, as a
copy is: the item's price, not the catalog's), in the source order's currency. One
without items renews its whole source order (manual mode). Which mode a renewal is in is
read when its target is built (``targets.load_items_many``), so the next renewal uses the
items as they are then.

Items are made when the subscription is created, from its source order's SKU lines whose
``frequency`` is the subscription's (:func:`add_from_source`), and added, changed and
removed through the API while the subscription is not cancelled. Its last item is not
removed: a subscription in automatic mode would otherwise fall back to renewing its whole
source order, charging for lines the customer never subscribed to.

Callers hold the subscription's row lock (items are checked against its status, and the
last one is counted). Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from copying.errors import CopyInputError, InUseError
from copying.orders import targets
from copying.subscriptions.subscription_states import SubscriptionStateError
from models import (
    ItemType,
    LineItem,
    Order,
    OrderSubscription,
    OrderSubscriptionItem,
    Sku,
    SubscriptionStatus,
    new_public_id,
    utcnow,
)

#: What may still change on an item of a cancelled subscription.
ALWAYS_EDITABLE = frozenset({"metadata"})


def check_open(subscription: OrderSubscription, doing: str) -> None:
    """Raise SubscriptionStateError (409) when the subscription is cancelled: its items
    stay as they were (``doing`` says what was asked)."""
    if subscription.status == SubscriptionStatus.CANCELLED:
        raise SubscriptionStateError(
            subscription.id,
            subscription.status,
            "changed",
            reason=f"{doing} only until it is cancelled",
        )


def check_editable(subscription: OrderSubscription, changing: Iterable[str]) -> None:
    """Before an item's update: a cancelled subscription's items keep their terms."""
    terms = set(changing) - ALWAYS_EDITABLE
    if terms:
        check_open(subscription, f"its items' {', '.join(sorted(terms))} can change")


def _source_order(session: Session, subscription: OrderSubscription) -> Order:
    return session.get_one(Order, subscription.source_order_id)


def _sku(session: Session, subscription: OrderSubscription, code: str, currency: str) -> Sku:
    """The SKU ``code`` of the subscription's mode, sellable in ``currency``; raises
    CopyInputError (``sku_code``) if not."""
    sku = session.scalar(select(Sku).where(Sku.mode == subscription.mode, Sku.code == code))
    if sku is None:
        raise CopyInputError("sku_code", f"SKU {code!r} does not exist in {subscription.mode} mode")
    problem = targets.problem_selling(code, sku, currency)
    if problem is not None:
        raise CopyInputError("sku_code", problem)
    return sku


def _line_of_source(session: Session, source: Order, code: str) -> LineItem | None:
    """The source order's first SKU line of ``code``: the line an item of it stands for."""
    return session.scalar(
        select(LineItem)
        .where(
            LineItem.order_id == source.id,
            LineItem.item_type == ItemType.SKUS,
            LineItem.sku_code == code,
        )
        .order_by(LineItem.position)
        .limit(1)
    )


def _check_line(
    session: Session, subscription: OrderSubscription, line: LineItem, source: Order
) -> None:
    """A line an item is made from: a SKU line of an order of the subscription's customer
    and mode, in the source order's currency. Raises CopyInputError (``source_line_item``)."""
    order = session.get_one(Order, line.order_id)
    problem = None
    if line.item_type != ItemType.SKUS:
        problem = f"line item {line.id} is a {line.item_type} line; an item is a SKU"
    elif order.mode != subscription.mode:
        problem = f"line item {line.id} does not exist in {subscription.mode} mode"
    elif order.customer_id != subscription.customer_id:
        problem = (
            f"line item {line.id} is of customer {order.customer_id}'s order, not of the "
            f"subscription's customer {subscription.customer_id}"
        )
    elif order.currency_code != source.currency_code:
        problem = (
            f"line item {line.id} is priced in {order.currency_code}; the subscription "
            f"renews in {source.currency_code}"
        )
    if problem is not None:
        raise CopyInputError("source_line_item", problem)


def _check_amount(code: str, unit_amount_cents: int, quantity: int) -> None:
    too_much = targets.problem_amount(code, unit_amount_cents, quantity)
    if too_much is not None:
        raise CopyInputError("quantity", too_much)


def add(
    session: Session,
    subscription: OrderSubscription,
    *,
    sku_code: str | None = None,
    quantity: int | None = None,
    unit_amount_cents: int | None = None,
    source_line: LineItem | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> OrderSubscriptionItem:
    """A new item of ``subscription`` (not cancelled), added to the session.

    It stands for ``source_line`` when given (its SKU, quantity and unit amount are the
    defaults), else for the source order's line of its SKU, if it has one. The unit amount
    defaults to that line's, else to the catalog's price; the quantity to that line's,
    else 1. The SKU must exist in the subscription's mode and be sellable in its source
    order's currency. Raises CopyInputError naming the field, SubscriptionStateError.
    """
    check_open(subscription, "its items can change")
    source = _source_order(session, subscription)
    if source_line is not None:
        _check_line(session, subscription, source_line, source)
        if sku_code is not None and sku_code != source_line.sku_code:
            raise CopyInputError(
                "sku_code",
                f"line item {source_line.id} is of SKU {source_line.sku_code}, not {sku_code}",
            )
        sku_code = source_line.sku_code
    if sku_code is None:
        raise CopyInputError("sku_code", "an item needs a sku_code (or a source_line_item)")
    sku = _sku(session, subscription, sku_code, source.currency_code)
    line = source_line or _line_of_source(session, source, sku_code)
    if unit_amount_cents is None:
        unit_amount_cents = line.unit_amount_cents if line is not None else sku.unit_amount_cents
    if quantity is None:
        quantity = line.quantity if line is not None else 1
    _check_amount(sku_code, unit_amount_cents, quantity)
    item = OrderSubscriptionItem(
        id=new_public_id(),
        mode=subscription.mode,
        order_subscription_id=subscription.id,
        sku_code=sku_code,
        quantity=quantity,
        unit_amount_cents=unit_amount_cents,
        source_line_item_id=line.id if line is not None else None,
        metadata_=dict(metadata or {}),
    )
    session.add(item)
    return item


def add_from_source(
    session: Session, subscription: OrderSubscription
) -> list[OrderSubscriptionItem]:
    """The items of a new subscription: one per SKU line of its source order whose
    ``frequency`` is the subscription's, at that line's quantity and unit amount (as it
    was sold, like a copy's lines). None such: no items, manual mode. Flushes the
    subscription first (its items refer to it)."""
    lines = session.scalars(
        select(LineItem)
        .where(
            LineItem.order_id == subscription.source_order_id,
            LineItem.item_type == ItemType.SKUS,
            LineItem.frequency == subscription.frequency,
        )
        .order_by(LineItem.position)
    ).all()
    if not lines:
        return []
    session.flush()
    now = utcnow()
    items = [
        OrderSubscriptionItem(
            id=new_public_id(),
            mode=subscription.mode,
            order_subscription_id=subscription.id,
            sku_code=line.sku_code,
            quantity=line.quantity,
            unit_amount_cents=line.unit_amount_cents,
            source_line_item_id=line.id,
            metadata_={},
            # Items renew oldest first: these in their lines' order, not by their ids.
            created_at=now + timedelta(microseconds=offset),
            updated_at=now,
        )
        for offset, line in enumerate(lines)
        if line.sku_code is not None
    ]
    session.add_all(items)
    return items


def apply_changes(
    session: Session,
    subscription: OrderSubscription,
    item: OrderSubscriptionItem,
    changed: set[str],
) -> None:
    """Check an item whose fields ``changed`` were just set, and follow them up: a new SKU
    (sellable in the source order's currency) stands for the source order's line of it,
    if any, and takes that line's unit amount, else the catalog's, unless a unit amount
    was set with it. Raises CopyInputError naming the field."""
    if "sku_code" in changed:
        source = _source_order(session, subscription)
        sku = _sku(session, subscription, item.sku_code, source.currency_code)
        line = _line_of_source(session, source, item.sku_code)
        item.source_line_item_id = line.id if line is not None else None
        if "unit_amount_cents" not in changed:
            item.unit_amount_cents = (
                line.unit_amount_cents if line is not None else sku.unit_amount_cents
            )
    _check_amount(item.sku_code, item.unit_amount_cents, item.quantity)


def remove(session: Session, subscription: OrderSubscription, item: OrderSubscriptionItem) -> None:
    """Delete an item of a subscription that is not cancelled, unless it is its last
    (InUseError: see the module's docstring)."""
    check_open(subscription, "its items can be removed")
    count = session.scalar(
        select(func.count())
        .select_from(OrderSubscriptionItem)
        .where(OrderSubscriptionItem.order_subscription_id == subscription.id)
    )
    if (count or 0) <= 1:
        raise InUseError(
            f"order subscription item {item.id} is order subscription {subscription.id}'s "
            "last: it renews its items only; add another first, or deactivate or cancel "
            "the subscription"
        )
    session.delete(item)
