"""The reads the CLI shows. Read-only; the caller owns the session."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from models import Mode, Order, OrderCopy, OrderCopyEvent

if TYPE_CHECKING:
    from copying.copies import bulk


def get_copy(session: Session, copy_id: str, mode: Mode) -> OrderCopy | None:
    """The copy, or None when it does not exist in ``mode`` (a test id is unknown in live)."""
    copy = session.get(OrderCopy, copy_id)
    return copy if copy is not None and copy.mode == mode else None


def failed_copies(session: Session, mode: Mode, criteria: bulk.RetryCriteria) -> list[OrderCopy]:
    """The failed copies a bulk retry with ``criteria`` would select, in its order."""
    # Here, not at the top: the copying engine, which the other reads can do without.
    from copying.copies import bulk

    return list(session.scalars(bulk.failed_copies(mode, criteria)))


def copy_events(session: Session, copy_id: str) -> list[OrderCopyEvent]:
    """The copy's history, oldest first."""
    return list(
        session.scalars(
            select(OrderCopyEvent)
            .where(OrderCopyEvent.order_copy_id == copy_id)
            .order_by(OrderCopyEvent.id)
        )
    )


def copies_by_id(session: Session, copy_ids: Sequence[str]) -> list[OrderCopy]:
    """The copies named, in the order named (missing ones left out)."""
    found = {
        copy.id: copy
        for copy in session.scalars(select(OrderCopy).where(OrderCopy.id.in_(copy_ids)))
    }
    return [found[copy_id] for copy_id in copy_ids if copy_id in found]


def order_numbers(session: Session, order_ids: set[str]) -> dict[str, int]:
    """Order id → order number, for the ids given."""
    if not order_ids:
        return {}
    rows = session.execute(select(Order.id, Order.number).where(Order.id.in_(order_ids)))
    return {order_id: number for order_id, number in rows}


def has_orders(session: Session) -> bool:
    """Whether the database holds any order, in any mode."""
    return bool(session.scalar(select(exists().where(Order.id.is_not(None)))))
