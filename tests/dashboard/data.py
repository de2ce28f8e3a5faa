"""Rows for the dashboard's tests, made by the domain's own calls and real runs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from copying import runs
from copying.orders.gateways import TestGateway
from copying.runs import Outcome
from models import CopyStatus, Mode, OrderCopy, Sku, db
from tests.factories import Line, create_copy, make_order, make_sku


@dataclass
class Failed:
    copy_ids: list[str]
    sku_id: str
    source_id: str


def failed_copies(
    sessions: sessionmaker[Session], count: int, *, mode: Mode = Mode.TEST, code: str = "SHORT-TEE"
) -> Failed:
    """``count`` copies of an order whose SKU is out of stock, run (for real) to ``failed``."""
    with sessions.begin() as s:
        sku = make_sku(s, code, stock=0, mode=mode)
        source = make_order(s, [Line(sku, 2)], mode=mode)
        sku_id, source_id = sku.id, source.id
    ids = [create_copy(sessions, source_id, mode=mode).id for _ in range(count)]
    ran = runs.execute(sessions, ids, gateways={"test": TestGateway(db.engine)})
    assert all(ran.outcome[i] is Outcome.FAILED for i in ids), ran.outcome
    return Failed(ids, sku_id, source_id)


def restock(sessions: sessionmaker[Session], sku_id: str, quantity: int = 1000) -> None:
    with sessions.begin() as s:
        s.execute(update(Sku).where(Sku.id == sku_id).values(stock_quantity=quantity))


def statuses(sessions: sessionmaker[Session], copy_ids: list[str]) -> dict[str, int]:
    with sessions.begin() as s:
        rows = s.execute(
            select(OrderCopy.status, func.count())
            .where(OrderCopy.id.in_(copy_ids))
            .group_by(OrderCopy.status)
        )
        return {str(status): count for status, count in rows}


def status_of(sessions: sessionmaker[Session], copy_id: str) -> CopyStatus:
    with sessions.begin() as s:
        found = s.scalar(select(OrderCopy.status).where(OrderCopy.id == copy_id))
        assert found is not None
        return found
