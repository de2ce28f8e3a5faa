"""The promises a copy keeps whatever happens, checked against the database."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import (
    AuthorizationStatus,
    CopyStatus,
    ItemType,
    LineItem,
    Order,
    OrderCopy,
    OrderStatus,
    PaymentAuthorization,
    Sku,
    TestGatewayCharge,
)


def violations(
    session: Session, copy_ids: Iterable[str], initial_stock: dict[str, int]
) -> list[str]:
    """Every broken promise, as a sentence; empty when all hold."""
    found = []
    copies = session.scalars(select(OrderCopy).where(OrderCopy.id.in_(list(copy_ids)))).all()
    for copy in copies:
        key = f"order_copy:{copy.id}:place"
        if copy.status in (CopyStatus.PENDING, CopyStatus.IN_PROGRESS):
            found.append(f"{copy.id} is still {copy.status}")
        if copy.status == CopyStatus.COMPLETED and copy.target_order_id is None:
            found.append(f"{copy.id} completed without a target order")
        if copy.errors_count != sum(len(v) for v in copy.errors_log.values()):
            found.append(f"{copy.id} errors_count {copy.errors_count} != messages in errors_log")
        held = session.scalar(
            select(func.count())
            .select_from(PaymentAuthorization)
            .where(
                PaymentAuthorization.idempotency_key.startswith(key),
                PaymentAuthorization.status != AuthorizationStatus.DECLINED,
            )
        )
        charged = session.scalar(
            select(func.count())
            .select_from(TestGatewayCharge)
            .where(
                TestGatewayCharge.idempotency_key.startswith(key),
                TestGatewayCharge.outcome == "authorized",
            )
        )
        if (held or 0) > 1 or (charged or 0) > 1:
            found.append(f"{copy.id} holds {held} authorizations, the gateway charged {charged}")
        if not copy.place_target_order and (held or charged):
            found.append(f"{copy.id} did not ask to place but holds a payment")
    # Targets: every order that is neither a source nor referenced by a copy is an orphan.
    sources = {c.source_order_id for c in copies}
    targets = {c.target_order_id for c in copies if c.target_order_id}
    orphans = session.scalars(
        select(Order.id).where(
            Order.id.not_in(sources | targets) if sources | targets else Order.id.is_not(None)
        )
    ).all()
    if orphans:
        found.append(f"orders built but owned by no copy: {sorted(orphans)}")
    voided_twice = session.scalars(
        select(TestGatewayCharge.idempotency_key).where(
            TestGatewayCharge.voided_at.is_not(None), TestGatewayCharge.outcome != "authorized"
        )
    ).all()
    if voided_twice:
        found.append(f"voided without an authorization: {voided_twice}")
    # Stock: initial - what placed, not cancelled, orders hold = what is left.
    held_stock = dict(
        session.execute(
            select(LineItem.sku_code, func.sum(LineItem.quantity))
            .join(Order, Order.id == LineItem.order_id)
            .where(
                LineItem.item_type == ItemType.SKUS,
                Order.status.in_([OrderStatus.PLACED, OrderStatus.APPROVED]),
            )
            .group_by(LineItem.sku_code)
        ).all()
    )
    for code, quantity in session.execute(select(Sku.code, Sku.stock_quantity)):
        expected = initial_stock.get(code, quantity) - held_stock.get(code, 0)
        if code in initial_stock and quantity != expected:
            found.append(f"SKU {code}: {quantity} in stock, expected {expected}")
    return found
