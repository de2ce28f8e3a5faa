"""What may change on an order, and the changes a person makes to one: its line items
(priced by the one pricer, ``targets.problem_selling``), its coupon, its wallet entry, its
deletion.

An order can be edited while it is ``draft`` or ``pending`` and no unfinished copy owns
it (``placing.check_not_owned``); its reference, reference origin and metadata can always
change. Callers hold the order's row lock (totals are recomputed from its lines).

Each change of its lines or coupon *refreshes* the order (:func:`refresh`): its SKU lines
priced from the catalog again, its promotion lines made again (``promotions.apply``), its
totals recomputed; so does placing it through the API (:func:`refresh_before_placing`),
unless it is a copy's target still frozen as copied.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from copying.errors import CopyInputError, InUseError, OrderStateError
from copying.orders import order_states, placing, promotions, targets, wallet
from copying.subscriptions.schedules import ScheduleError, check_frequency
from models import (
    AuthorizationStatus,
    Bundle,
    CustomerPaymentSource,
    ItemType,
    LineItem,
    Mode,
    Order,
    OrderCopy,
    PaymentAuthorization,
    Sku,
    utcnow,
)

#: What may still change on an order once it is placed or cancelled.
ALWAYS_EDITABLE = frozenset({"reference", "reference_origin", "metadata"})


def check_editable(session: Session, order: Order, doing: str) -> None:
    """Raise OrderBusyError if a copy owns ``order``, OrderStateError unless it is draft or
    pending (``doing`` says what was asked, e.g. "its line items can change")."""
    placing.check_not_owned(session, order.id)
    if order.status not in order_states.PLACEABLE:
        raise OrderStateError(
            order.id,
            order.status,
            f"{doing} only while it is draft or pending",
        )


def check_update(session: Session, order: Order, changing: Iterable[str]) -> None:
    """Raise unless the attributes and relationships named by ``changing`` may change now;
    no unfinished copy's target changes at all."""
    terms = set(changing) - ALWAYS_EDITABLE
    if terms:
        check_editable(session, order, f"{', '.join(sorted(terms))} can change")
    else:
        placing.check_not_owned(session, order.id)


def check_address_editable(session: Session, address_id: str) -> None:
    """Raise OrderBusyError if an order that bills or ships to the address is owned by an
    unfinished copy: the address is part of that order. Locks those orders' rows."""
    billed_or_shipped = session.scalars(
        select(Order.id)
        .where((Order.billing_address_id == address_id) | (Order.shipping_address_id == address_id))
        .with_for_update()
    ).all()
    placing.check_not_owned(session, list(billed_or_shipped))


def use_wallet_entry(session: Session, order: Order, entry_id: str, today: date) -> None:
    """Charge ``order`` to the wallet entry ``entry_id``: the customer's own, in the order's
    mode, usable today. Raises CopyInputError (``_customer_payment_source_id``) if not."""
    check_editable(session, order, "its payment source can change")
    # Locked: a delete of the entry waits, then sees this order charged to it.
    entry = session.get(CustomerPaymentSource, entry_id, with_for_update=True)
    problem = wallet.problem_with_entry(entry, entry_id, order, today)
    if problem is not None or entry is None:
        raise CopyInputError(
            "_customer_payment_source_id", problem or f"wallet entry {entry_id} no longer exists"
        )
    wallet.attach_wallet_entry(order, entry)


def delete_order(session: Session, order: Order) -> None:
    """Delete an order no copy came from or made. Raises OrderBusyError, OrderStateError or
    InUseError. Does not commit."""
    check_editable(session, order, "it can be deleted")
    copied = session.scalar(
        select(
            exists().where(
                (OrderCopy.source_order_id == order.id) | (OrderCopy.target_order_id == order.id)
            )
        )
    )
    if copied:
        raise InUseError(f"order {order.id} belongs to order copies; delete them first")
    paying = session.scalar(
        select(
            exists().where(
                PaymentAuthorization.order_id == order.id,
                PaymentAuthorization.status.not_in(
                    [AuthorizationStatus.DECLINED, AuthorizationStatus.VOIDED]
                ),
            )
        )
    )
    if paying:  # a payment asked for (a place under way) or being voided: its record stays
        raise InUseError(f"order {order.id} has a payment under way; try again shortly")
    session.delete(order)


def add_line(
    session: Session,
    order: Order,
    *,
    item_type: ItemType,
    quantity: int,
    sku_code: str | None = None,
    bundle_code: str | None = None,
    name: str = "",
    unit_amount_cents: int | None = None,
    options: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    frequency: str | None = None,
) -> LineItem:
    """Add a line to an editable order and refresh it (:func:`refresh`). A SKU line is
    priced from the catalog (the one pricer); a bundle line naming its ``bundle_code`` (a
    bundle of the mode sellable in the order's currency) is named and, unless
    ``unit_amount_cents`` is given, priced as the bundle; other lines carry the
    ``unit_amount_cents`` given; promotion lines are the order's promotions' to make,
    never added. A SKU line, or a bundle line naming its bundle, may carry the
    ``frequency`` of a subscription it is for (a subscription of the order at that
    frequency renews it as an item). Raises CopyInputError naming the bad input. Does not
    commit."""
    check_editable(session, order, "its line items can change")
    if bundle_code is not None and item_type != ItemType.BUNDLES:
        raise CopyInputError("bundle_code", f"a {item_type} line names no bundle")
    if frequency is not None:
        if item_type not in (ItemType.SKUS, ItemType.BUNDLES):
            raise CopyInputError("frequency", f"a {item_type} line is not subscribed to")
        if item_type == ItemType.BUNDLES and bundle_code is None:
            raise CopyInputError(
                "frequency", "a bundle line is subscribed to only when it names its bundle_code"
            )
        try:
            check_frequency(frequency)
        except ScheduleError as error:
            raise CopyInputError("frequency", str(error)) from None
    if item_type == ItemType.PROMOTIONS:
        raise CopyInputError(
            "item_type",
            "promotion lines are made from the promotions and the order's coupon_code",
        )
    unit = unit_amount_cents
    if item_type == ItemType.SKUS:
        sku = session.scalar(select(Sku).where(Sku.mode == order.mode, Sku.code == sku_code))
        if sku is None:
            raise CopyInputError(
                "sku_code", f"SKU {sku_code!r} does not exist in {order.mode} mode"
            )
        problem = targets.problem_selling(sku.code, sku, order.currency_code)
        if problem is not None:
            raise CopyInputError("sku_code", problem)
        unit, name = sku.unit_amount_cents, name or sku.name
    elif bundle_code is not None:
        bundle = session.scalar(
            select(Bundle).where(Bundle.mode == order.mode, Bundle.code == bundle_code)
        )
        if bundle is None:
            raise CopyInputError(
                "bundle_code", f"bundle {bundle_code!r} does not exist in {order.mode} mode"
            )
        problem = targets.problem_selling(bundle.code, bundle, order.currency_code, "bundle")
        if problem is not None:
            raise CopyInputError("bundle_code", problem)
        unit, name = bundle.price_amount_cents if unit is None else unit, name or bundle.name
    elif unit is None:
        raise CopyInputError("unit_amount_cents", f"a {item_type} line item needs it")
    too_much = targets.problem_amount(name or str(sku_code), unit, quantity)
    if too_much is not None:
        raise CopyInputError("quantity", too_much)
    line = LineItem(
        mode=order.mode,
        order_id=order.id,
        position=len(targets.load_lines(session, order.id)),
        item_type=item_type,
        sku_code=sku_code if item_type == ItemType.SKUS else None,
        bundle_code=bundle_code,
        name=name,
        quantity=quantity,
        unit_amount_cents=unit,
        total_amount_cents=unit * quantity,
        options=options or [],
        metadata_=metadata or {},
        frequency=frequency,
    )
    session.add(line)
    session.flush()
    refresh(session, order, utcnow())
    return line


def remove_line(session: Session, order: Order, line: LineItem) -> None:
    """Delete a line of an editable order and refresh it. A promotion line is the order's
    promotions' to remove (its coupon's, by removing the coupon_code): InUseError. Does
    not commit."""
    check_editable(session, order, "its line items can change")
    if line.item_type == ItemType.PROMOTIONS:
        raise InUseError(
            f"line item {line.id} is a promotion's: it goes with its promotion, or with the"
            " order's coupon_code"
        )
    session.delete(line)
    session.flush()
    refresh(session, order, utcnow())


def check_coupon(
    session: Session, mode: Mode, currency_code: str, code: str | None, now: datetime
) -> None:
    """Raise CopyInputError (``coupon_code``) unless ``code`` (or none) may go on an order of
    ``mode`` in ``currency_code`` now: a coupon of that mode, valid, for that currency."""
    if code is None:
        return
    problem = promotions.problem_with_coupon(session, mode, code, currency_code, now)
    if problem is not None:
        raise CopyInputError("coupon_code", problem)


def use_coupon(session: Session, order: Order, code: str | None, now: datetime) -> None:
    """Put the coupon ``code`` on an editable order (None: take it off) and refresh it.
    Raises CopyInputError (``coupon_code``) unless it may go there now. Does not commit."""
    check_editable(session, order, "its coupon_code can change")
    check_coupon(session, order.mode, order.currency_code, code, now)
    order.coupon_code = code
    refresh(session, order, now)


def refresh_before_placing(session: Session, order_id: str, mode: Mode, now: datetime) -> None:
    """Refresh the order before it is placed, if it can be placed and is not a copy's
    target still frozen; otherwise leave it for placing to refuse or take as it is.
    Locks its row. Does not commit."""
    order = session.get(Order, order_id, with_for_update=True)
    if (
        order is None
        or order.mode != mode
        or order.frozen
        or order.status not in order_states.PLACEABLE
        or placing.owner(session, order.id) is not None
    ):
        return
    refresh(session, order, now)


def refresh(session: Session, order: Order, now: datetime) -> None:
    """Price the order's SKU lines from the catalog again (those it can still sell), make
    its promotion lines again as of ``now``, recompute its totals; it is no longer frozen.
    Raises CopyInputError (``quantity``) if an amount would not fit. Caller holds the
    order's row lock and checked it is editable. Does not commit."""
    lines = targets.load_lines(session, order.id)
    codes = {line.sku_code for line in lines if line.item_type == ItemType.SKUS}
    skus = {
        sku.code: sku
        for sku in session.scalars(select(Sku).where(Sku.mode == order.mode, Sku.code.in_(codes)))
    }
    kept = []
    for line in lines:
        if line.item_type == ItemType.PROMOTIONS:
            session.delete(line)
            continue
        sku = skus.get(line.sku_code or "") if line.item_type == ItemType.SKUS else None
        if sku is not None and targets.problem_selling(sku.code, sku, order.currency_code) is None:
            too_much = targets.problem_amount(line.name, sku.unit_amount_cents, line.quantity)
            if too_much is not None:
                raise CopyInputError("quantity", too_much)
            line.unit_amount_cents = sku.unit_amount_cents
            line.total_amount_cents = sku.unit_amount_cents * line.quantity
        kept.append(line)
    made = promotions.apply(
        session,
        order.mode,
        order.currency_code,
        order.coupon_code,
        [_as_line(line) for line in kept],
        now,
    )[len(kept) :]  # the lines given come back first, then the promotion lines made
    position = max((line.position for line in kept), default=-1) + 1
    for offset, promotion_line in enumerate(made):
        session.add(
            LineItem(
                **promotion_line._asdict(),
                total_amount_cents=promotion_line.unit_amount_cents * promotion_line.quantity,
                mode=order.mode,
                order_id=order.id,
                position=position + offset,
            )
        )
    session.flush()
    order.frozen = False
    _refresh_totals(session, order)


def _as_line(line: LineItem) -> targets.Line:
    return targets.Line(*(getattr(line, name) for name in targets.Line._fields))


def editable_order(session: Session, order_id: str | None, mode: Mode) -> Order:
    """The order a line item belongs to, row-locked. Raises CopyInputError (``order``)."""
    order = session.get(Order, order_id, with_for_update=True) if order_id else None
    if order is None or order.mode != mode:
        raise CopyInputError("order", f"order {order_id} does not exist in {mode} mode")
    return order


def _refresh_totals(session: Session, order: Order) -> None:
    lines = targets.load_lines(session, order.id)
    totals = targets.totals(
        [
            {"item_type": line.item_type, "total_amount_cents": line.total_amount_cents}
            for line in lines
        ]
    )
    for column, value in totals.items():
        if abs(value) > targets.MAX_AMOUNT_CENTS:
            raise CopyInputError(
                "quantity",
                f"the order's {column} would be {value}, more than {targets.MAX_AMOUNT_CENTS}",
            )
        setattr(order, column, value)
    if lines:
        order_states.open_order(order)
