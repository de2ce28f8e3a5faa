"""Stock reservation: one statement per order, whatever its number of lines."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models import ItemType, LineItem, Mode, Sku


def _demand(order_id: str):  # type: ignore[no-untyped-def]
    return (
        select(LineItem.sku_code, func.sum(LineItem.quantity).label("quantity"))
        .where(LineItem.order_id == order_id, LineItem.item_type == ItemType.SKUS)
        .group_by(LineItem.sku_code)
        .subquery("demand")
    )


def reserve(session: Session, order_id: str, mode: Mode) -> list[str]:
    """Take the order's SKU quantities out of stock, all or nothing.

    Returns why it could not (empty on success); on failure nothing changed.
    Does not commit.
    """
    demand = _demand(order_id)
    wanted: dict[str, int] = {
        code: quantity
        for code, quantity in session.execute(select(demand.c.sku_code, demand.c.quantity))
    }
    if not wanted:
        return []
    with session.begin_nested() as savepoint:
        taken = (
            session.execute(
                update(Sku)
                .where(
                    Sku.mode == mode,
                    Sku.code == demand.c.sku_code,
                    Sku.stock_quantity >= demand.c.quantity,
                )
                .values(stock_quantity=Sku.stock_quantity - demand.c.quantity)
                .returning(Sku.code)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        if len(taken) == len(wanted):
            return []
        savepoint.rollback()
    left: dict[str, int] = {
        code: quantity
        for code, quantity in session.execute(
            select(Sku.code, Sku.stock_quantity).where(Sku.mode == mode, Sku.code.in_(wanted))
        )
    }
    return [
        _shortage(code, wanted[code], left.get(code))
        for code in sorted(wanted)
        if code not in left or left[code] < wanted[code]
    ]


def release(session: Session, order_id: str, mode: Mode) -> None:
    """Put the order's SKU quantities back. Does not commit."""
    demand = _demand(order_id)
    session.execute(
        update(Sku)
        .where(Sku.mode == mode, Sku.code == demand.c.sku_code)
        .values(stock_quantity=Sku.stock_quantity + demand.c.quantity)
        .execution_options(synchronize_session=False)
    )


def _shortage(code: str, wanted: int, left: int | None) -> str:
    if left is None:
        return f"SKU {code} is unknown"
    return f"SKU {code} is out of stock ({wanted} requested, {left} left)"
