"""Order subscription items: what a subscription in automatic mode renews.

A subscription with items renews only them, as Commerce Layer's automatic mode does: each
renewal's target order gets one line per item, at the item's quantity and unit amount
(frozen, as a copy is: the item's price, not the catalog's), in the source order's
currency. An item names exactly one of a SKU (``sku_code``: a SKU line), a bundle
(``bundle_code``: a bundle line, named as the bundle) or an adjustment (``adjustment``: an
adjustment line, named as it, its amount may be negative). One without items renews its
whole source order (manual mode). Which mode a renewal is in is read when its target is
built (``targets.load_items_many``), so the next renewal uses the items as they are then.

Items are made when the subscription is created, from its source order's SKU and bundle
lines whose ``frequency`` is the subscription's (:func:`add_from_source`), and added,
changed and removed through the API while the subscription is not cancelled. What an item
is (its ``item_type``) is fixed when it is made: its SKU, bundle or adjustment can change,
not its kind. Its last item is not
removed: a subscription in automatic mode would otherwise fall back to renewing its whole
source order, charging for lines the customer never subscribed to.

Callers hold the subscription's row lock (items are checked against its status, and the
last one is counted). Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from copying.errors import CopyInputError, InUseError
from copying.orders import targets
from copying.subscriptions.subscription_states import SubscriptionStateError
from models import (
    Adjustment,
    Bundle,
    ItemType,
    LineItem,
    Mode,
    Order,
    OrderSubscription,
    OrderSubscriptionItem,
    Sku,
    SubscriptionStatus,
    new_public_id,
    utcnow,
)
from models.subscription_items import ITEM_TYPES

#: What may still change on an item of a cancelled subscription.
ALWAYS_EDITABLE = frozenset({"metadata"})
#: The input that names each kind of item (an attribute, or the ``adjustment``
#: relationship), in :data:`ITEM_TYPES`' order.
NAMED_BY = {
    ItemType.SKUS: "sku_code",
    ItemType.BUNDLES: "bundle_code",
    ItemType.ADJUSTMENTS: "adjustment",
}
#: The kinds of source line an item can be made from (an adjustment line names no
#: adjustment of the catalog).
FROM_LINES = (ItemType.SKUS, ItemType.BUNDLES)


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


class Named(NamedTuple):
    """What an item names, found in the catalog: its kind, the catalog's row, its
    column values, and its default unit amount (the catalog's)."""

    item_type: ItemType
    row: Sku | Bundle | Adjustment
    columns: dict[str, Any]
    price: int


def _in_catalog(
    session: Session,
    subscription: OrderSubscription,
    currency: str,
    item_type: ItemType,
    code: str | None,
    adjustment: Adjustment | None,
) -> Named:
    """The SKU or bundle ``code``, or the ``adjustment``, an item of ``item_type`` names:
    of the subscription's mode, sellable in ``currency`` (the source order's). Raises
    CopyInputError naming the field (``sku_code``, ``bundle_code``, ``adjustment``)."""
    field = NAMED_BY[item_type]
    if item_type == ItemType.ADJUSTMENTS:
        assert adjustment is not None
        if adjustment.mode != subscription.mode:
            raise CopyInputError(
                field, f"adjustment {adjustment.id} does not exist in {subscription.mode} mode"
            )
        if adjustment.currency_code != currency:
            raise CopyInputError(
                field,
                f"adjustment {adjustment.id} is in {adjustment.currency_code}; the "
                f"subscription renews in {currency}",
            )
        columns: dict[str, Any] = {"adjustment_id": adjustment.id}
        return Named(item_type, adjustment, columns, adjustment.amount_cents)
    noun = "SKU" if item_type == ItemType.SKUS else "bundle"
    row = _by_code(session, item_type, subscription.mode, code)
    if row is None:
        raise CopyInputError(field, f"{noun} {code!r} does not exist in {subscription.mode} mode")
    problem = targets.problem_selling(row.code, row, currency, noun)
    if problem is not None:
        raise CopyInputError(field, problem)
    if isinstance(row, Sku):
        return Named(
            item_type, row, {"sku_code": row.code, "sku_id": row.id}, row.unit_amount_cents
        )
    return Named(
        item_type, row, {"bundle_code": row.code, "bundle_id": row.id}, row.price_amount_cents
    )


def _by_code(
    session: Session, item_type: ItemType, mode: Mode, code: str | None
) -> Sku | Bundle | None:
    """The SKU (an item of ``skus``) or bundle ``code`` of ``mode``, if any."""
    if item_type == ItemType.SKUS:
        return session.scalar(select(Sku).where(Sku.mode == mode, Sku.code == code))
    return session.scalar(select(Bundle).where(Bundle.mode == mode, Bundle.code == code))


def _line_of_source(
    session: Session, source: Order, item_type: ItemType, code: str
) -> LineItem | None:
    """The source order's first SKU (bundle) line of ``code``: the line an item of it
    stands for."""
    column = LineItem.sku_code if item_type == ItemType.SKUS else LineItem.bundle_code
    return session.scalar(
        select(LineItem)
        .where(LineItem.order_id == source.id, LineItem.item_type == item_type, column == code)
        .order_by(LineItem.position)
        .limit(1)
    )


def _check_line(
    session: Session, subscription: OrderSubscription, line: LineItem, source: Order
) -> None:
    """A line an item is made from: a SKU line or a bundle line naming its bundle, of an
    order of the subscription's customer and mode, in the source order's currency. Raises
    CopyInputError (``source_line_item``)."""
    order = session.get_one(Order, line.order_id)
    problem = None
    if line.item_type not in FROM_LINES:
        problem = f"line item {line.id} is a {line.item_type} line; an item is a SKU or a bundle"
    elif line.item_type == ItemType.BUNDLES and line.bundle_code is None:
        problem = f"line item {line.id} is a bundle line naming no bundle_code"
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


def _check_amount(item_type: ItemType, name: str, unit_amount_cents: int, quantity: int) -> None:
    if unit_amount_cents < 0 and item_type != ItemType.ADJUSTMENTS:
        raise CopyInputError(
            "unit_amount_cents", "must be 0 or more (only an adjustment's may be negative)"
        )
    too_much = targets.problem_amount(name, unit_amount_cents, quantity)
    if too_much is not None:
        raise CopyInputError("quantity", too_much)


def _kind(named: Mapping[str, object]) -> ItemType:
    """The one kind of item ``named`` (input name: value given, or None) names. Raises
    CopyInputError pointing at the second one named, or at ``sku_code`` when none is."""
    given = [kind for kind in ITEM_TYPES if named.get(NAMED_BY[kind]) is not None]
    if not given:
        raise CopyInputError(
            "sku_code",
            "an item needs a sku_code, a bundle_code or an adjustment (or a source_line_item)",
        )
    if len(given) > 1:
        first, second = (NAMED_BY[kind] for kind in given[:2])
        raise CopyInputError(
            second, f"an item names one of sku_code, bundle_code or adjustment: {first} is given"
        )
    return given[0]


def add(
    session: Session,
    subscription: OrderSubscription,
    *,
    sku_code: str | None = None,
    bundle_code: str | None = None,
    adjustment: Adjustment | None = None,
    quantity: int | None = None,
    unit_amount_cents: int | None = None,
    source_line: LineItem | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> OrderSubscriptionItem:
    """A new item of ``subscription`` (not cancelled), added to the session: exactly one of
    a SKU, a bundle or an adjustment.

    It stands for ``source_line`` when given (its SKU or bundle, quantity and unit amount
    are the defaults), else for the source order's line of its SKU or bundle, if it has
    one. The unit amount defaults to that line's, else to the catalog's (the SKU's
    price, the bundle's, the adjustment's amount); the quantity to that line's, else 1.
    What it names must be of the subscription's mode and sellable in its source order's
    currency. Raises CopyInputError naming the field, SubscriptionStateError.
    """
    check_open(subscription, "its items can change")
    source = _source_order(session, subscription)
    if source_line is not None:
        _check_line(session, subscription, source_line, source)
        field = NAMED_BY[source_line.item_type]
        from_line = source_line.sku_code or source_line.bundle_code
        given = {"sku_code": sku_code, "bundle_code": bundle_code, "adjustment": adjustment}
        if given[field] is not None and given[field] != from_line:
            raise CopyInputError(
                field, f"line item {source_line.id} is of {from_line}, not {given[field]}"
            )
        if field == "sku_code":
            sku_code = from_line
        else:
            bundle_code = from_line
    item_type = _kind({"sku_code": sku_code, "bundle_code": bundle_code, "adjustment": adjustment})
    code = sku_code if item_type == ItemType.SKUS else bundle_code
    named = _in_catalog(session, subscription, source.currency_code, item_type, code, adjustment)
    line = source_line
    if line is None and item_type in FROM_LINES and code is not None:
        line = _line_of_source(session, source, item_type, code)
    if unit_amount_cents is None:
        unit_amount_cents = line.unit_amount_cents if line is not None else named.price
    if quantity is None:
        quantity = line.quantity if line is not None else 1
    _check_amount(item_type, code or named.row.id, unit_amount_cents, quantity)
    item = OrderSubscriptionItem(
        id=new_public_id(),
        mode=subscription.mode,
        order_subscription_id=subscription.id,
        item_type=item_type,
        **named.columns,
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
    """The items of a new subscription: one per SKU line and bundle line (naming its
    bundle) of its source order whose ``frequency`` is the subscription's, at that line's
    quantity and unit amount (as it was sold, like a copy's lines). None such: no items,
    manual mode. Flushes the subscription first (its items refer to it)."""
    lines = session.scalars(
        select(LineItem)
        .where(
            LineItem.order_id == subscription.source_order_id,
            LineItem.item_type.in_(FROM_LINES),
            LineItem.frequency == subscription.frequency,
        )
        .order_by(LineItem.position)
    ).all()
    lines = [line for line in lines if (line.sku_code or line.bundle_code) is not None]
    if not lines:
        return []
    session.flush()
    ids = _catalog_ids(session, subscription, lines)
    now = utcnow()
    items = []
    for offset, line in enumerate(lines):
        is_sku = line.item_type == ItemType.SKUS
        items.append(
            OrderSubscriptionItem(
                id=new_public_id(),
                mode=subscription.mode,
                order_subscription_id=subscription.id,
                item_type=line.item_type,
                sku_code=line.sku_code if is_sku else None,
                bundle_code=None if is_sku else line.bundle_code,
                sku_id=ids.get((ItemType.SKUS, line.sku_code)) if is_sku else None,
                bundle_id=None if is_sku else ids.get((ItemType.BUNDLES, line.bundle_code)),
                quantity=line.quantity,
                unit_amount_cents=line.unit_amount_cents,
                source_line_item_id=line.id,
                metadata_={},
                # Items renew oldest first: these in their lines' order, not by their ids.
                created_at=now + timedelta(microseconds=offset),
                updated_at=now,
            )
        )
    session.add_all(items)
    return items


def _catalog_ids(
    session: Session, subscription: OrderSubscription, lines: Iterable[LineItem]
) -> dict[tuple[ItemType, str | None], str]:
    """The ids of the SKUs and bundles the lines name, in the subscription's mode."""
    ids: dict[tuple[ItemType, str | None], str] = {}
    for item_type, model, codes in (
        (ItemType.SKUS, Sku, {line.sku_code for line in lines}),
        (ItemType.BUNDLES, Bundle, {line.bundle_code for line in lines}),
    ):
        codes.discard(None)
        if codes:
            found = session.execute(
                select(model.code, model.id).where(
                    model.mode == subscription.mode, model.code.in_(codes)
                )
            )
            ids.update({(item_type, code): row_id for code, row_id in found})
    return ids


def apply_changes(
    session: Session,
    subscription: OrderSubscription,
    item: OrderSubscriptionItem,
    changed: set[str],
) -> None:
    """Check an item whose fields ``changed`` were just set (``adjustment``: its
    ``adjustment_id``), and follow them up. An item keeps its kind: it names its one SKU,
    bundle or adjustment. A new SKU or bundle (sellable in the source order's currency)
    stands for the source order's line of it, if any, and takes that line's unit amount,
    else the catalog's; a new adjustment takes its amount; unless a unit amount was set
    with it. Raises CopyInputError naming the field."""
    given = {
        "sku_code": item.sku_code,
        "bundle_code": item.bundle_code,
        "adjustment": item.adjustment_id,
    }
    own = NAMED_BY[item.item_type]
    for field, value in given.items():
        if field == own and value is None:
            raise CopyInputError(field, f"an item of {item.item_type} names one")
        if field != own and value is not None:
            raise CopyInputError(
                field,
                f"order subscription item {item.id} is of {item.item_type}: it names a "
                f"{own}, not a {field} (add another item for that)",
            )
    if own in changed:
        source = _source_order(session, subscription)
        code = item.sku_code or item.bundle_code
        adjustment = session.get(Adjustment, item.adjustment_id) if item.adjustment_id else None
        named = _in_catalog(
            session, subscription, source.currency_code, item.item_type, code, adjustment
        )
        for column, value in named.columns.items():
            setattr(item, column, value)
        line = None
        if item.item_type in FROM_LINES and code is not None:
            line = _line_of_source(session, source, item.item_type, code)
        item.source_line_item_id = line.id if line is not None else None
        if "unit_amount_cents" not in changed:
            item.unit_amount_cents = line.unit_amount_cents if line is not None else named.price
    name = item.sku_code or item.bundle_code or item.adjustment_id or item.id
    _check_amount(item.item_type, name, item.unit_amount_cents, item.quantity)


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
