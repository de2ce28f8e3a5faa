"""Placing and cancelling an order on request (a shop, the demo, the API's triggers).

Unlike a copy run these have no checkpoints: the gateway is asked first,
with no transaction open, and the stock, the payment and the status are
then written together. Authorization keys are ``order:<id>:place``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from copying import order_states, payments, stock, targets
from copying.errors import NotFoundError
from copying.gateways import Gateways
from models import Mode, Order, utcnow


def _load(session: Session, order_id: str, mode: Mode, *, lock: bool = False) -> Order:
    order = session.get(Order, order_id, with_for_update=lock)
    if order is None or order.mode != mode:
        raise NotFoundError(f"order {order_id} does not exist in {mode} mode")
    return order


def check_and_reserve(
    session: Session, order: Order, contents: targets.Contents | None = None
) -> tuple[list[str], targets.Contents]:
    """Why ``order`` cannot be placed, else take its stock (problems empty).

    ``contents`` are the order's, if already read in this transaction. Returns
    the problems and the order's contents. Does not commit.
    """
    if contents is None:
        contents = targets.load_contents(session, order.id)
    problems = order_states.check_placeable(order, *contents) or stock.reserve(
        session, order.id, order.mode, targets.demand(contents.lines)
    )
    return problems, contents


def place_order(
    sessions: sessionmaker[Session],
    order_id: str,
    mode: Mode,
    *,
    gateways: Gateways,
    now: datetime | None = None,
) -> list[str]:
    """Place the order; returns why not (nothing changed, any hold voided) or ``[]``."""
    now = now or utcnow()
    with sessions.begin() as session:
        order = _load(session, order_id, mode)
        problems = order_states.check_placeable(order, *targets.load_contents(session, order.id))
        if problems:
            return problems
        request = payments.request_for(session, order, f"order:{order.id}:place")
    answer = payments.ask(gateways, request) if request.amount_cents > 0 else None
    with sessions.begin() as session:
        order = _load(session, order_id, mode, lock=True)
        if answer is not None:
            payments.record_answer(session, order.mode, request, answer, now)
            if not answer.authorized:
                return [f"payment declined: {answer.message}"]
        problems, contents = check_and_reserve(session, order)
        if not problems:
            order_states.place(order, *contents, now, authorized=answer is not None)
            return []
    if answer is not None:  # stock ran out (or the order changed) while we asked
        _void_holds(sessions, order_id, gateways, now)
    return problems


def cancel_order(
    sessions: sessionmaker[Session],
    order_id: str,
    mode: Mode,
    *,
    gateways: Gateways,
    now: datetime | None = None,
) -> list[str]:
    """Cancel the order, release its stock and void its payments; returns why not or ``[]``."""
    now = now or utcnow()
    with sessions.begin() as session:
        order = _load(session, order_id, mode, lock=True)
        problems = order_states.check_cancellable(order)
        if problems:
            return problems
        order_states.cancel(order, now)
        stock.release(session, order.id, mode)
    return _void_holds(sessions, order_id, gateways, now)


def _void_holds(
    sessions: sessionmaker[Session], order_id: str, gateways: Gateways, now: datetime
) -> list[str]:
    """Void the order's holds at their gateways, then record it; returns what failed."""
    with sessions.begin() as session:
        held = payments.held_authorizations(session, order_id)
    voided, problems = payments.void_remote(gateways, held)
    with sessions.begin() as session:
        payments.mark_voided(session, voided, now)
    return problems
