"""Placing and cancelling an order, and capturing, refunding or voiding its payment, on
request (a shop, the demo, the API's triggers), and who may change an order at all.

Unlike a copy run these have no checkpoints. Placing follows the one rule for every
payment effect: the payment is written down as ``requested`` before the gateway is asked
(with no transaction open), and the transaction that records the answer re-reads the
order under its row lock and places it only if its status, total, currency and payment
source are exactly what was asked for, and its wallet entry can still pay. Otherwise the
hold this request recorded, and no other, is voided: a request that loses a race never
touches another's hold. Holds are voided in two steps (marked ``voiding``, voided at the
gateway, marked ``voided``), and the sweeper finishes what a dead process left.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from copying.errors import (
    NotFoundError,
    OrderBusyError,
    OrderChangedError,
    OrderStateError,
    one_line,
)
from copying.orders import order_states, payments, stock, targets, transactions, wallet
from copying.orders.gateways import GatewayAnswer, Gateways
from copying.subscriptions import subscription_states
from copying.webhooks import events, topics
from models import (
    CopyStatus,
    Mode,
    Order,
    OrderCopy,
    PaymentAuthorization,
    PaymentStatus,
    TransactionKind,
    utcnow,
)

log = structlog.get_logger("ordercopy.orders")

#: Copies that own their target order until they end.
UNFINISHED = (CopyStatus.PENDING, CopyStatus.IN_PROGRESS)


def _load(session: Session, order_id: str, mode: Mode, *, lock: bool = False) -> Order:
    order = session.get(Order, order_id, with_for_update=lock)
    if order is None or order.mode != mode:
        raise NotFoundError(f"order {order_id} does not exist in {mode} mode")
    return order


def owner(session: Session, order_id: str) -> str | None:
    """The unfinished copy whose target ``order_id`` is, if any."""
    return session.scalar(
        select(OrderCopy.id)
        .where(OrderCopy.target_order_id == order_id, OrderCopy.status.in_(UNFINISHED))
        .limit(1)
    )


@contextmanager
def _changing(
    sessions: sessionmaker[Session], order_id: str, mode: Mode
) -> Iterator[tuple[Session, Order]]:
    """A transaction holding the order's row lock, once no copy owns it (OrderBusyError
    otherwise; NotFoundError if it does not exist in ``mode``)."""
    with sessions.begin() as session:
        order = _load(session, order_id, mode, lock=True)
        check_not_owned(session, order.id)
        yield session, order


def check_not_owned(session: Session, order_ids: str | list[str]) -> None:
    """Raise OrderBusyError if an order of ``order_ids`` is the target of an unfinished
    copy: it belongs to that copy until the copy ends. Callers that change the order hold
    its row lock, so a copy's retry cannot take it back in between."""
    for order_id in [order_ids] if isinstance(order_ids, str) else order_ids:
        copy_id = owner(session, order_id)
        if copy_id is not None:
            raise OrderBusyError(order_id, copy_id)


def reserve_if_placeable(
    session: Session, order: Order, contents: targets.Contents | None = None
) -> tuple[list[str], targets.Contents]:
    """Why ``order`` cannot be placed, else take its stock (problems empty).

    ``contents`` are the order's, if already read in this transaction. Returns
    the problems and the order's contents. Does not commit.
    """
    if contents is None:
        contents = targets.load_contents(session, order.id)
    problems = _problems_placing(session, order, contents, utcnow().date()) or stock.reserve(
        session,
        order.id,
        order.mode,
        targets.demand(contents.lines),
        bundled=targets.has_bundles(contents.lines),
    )
    return problems, contents


def _problems_placing(
    session: Session, order: Order, contents: targets.Contents, today: date
) -> list[str]:
    """Why ``order`` cannot be placed now, its wallet entry included (stock aside)."""
    problems = order_states.problems_placing(order, *contents)
    entry_problem = wallet.problem_paying(session, order, today)
    return problems + ([entry_problem] if entry_problem is not None else [])


def place_order(
    sessions: sessionmaker[Session],
    order_id: str,
    mode: Mode,
    *,
    gateways: Gateways,
    now: datetime | None = None,
) -> list[str]:
    """Place the order; returns why not (nothing changed, any hold voided) or ``[]``.

    Raises OrderBusyError if a copy owns the order, OrderChangedError if it changed
    while its payment was asked for (the hold asked for was voided).
    """
    now = now or utcnow()
    with _changing(sessions, order_id, mode) as (session, order):
        contents = targets.load_contents(session, order.id)
        problems = _problems_placing(session, order, contents, now.date())
        if problems:
            return problems
        request = payments.request_for(session, order, payments.placing_key_base(order))
        if request.amount_cents > 0:
            payments.record_requests(session, [(mode, request)], now)
    answer = payments.ask(gateways, request) if request.amount_cents > 0 else None
    orphaned = False
    with sessions.begin() as session:
        found = session.get(Order, order_id, with_for_update=True)
        if found is None:  # deleted meanwhile, its payment rows with it
            orphaned = answer is not None and answer.succeeded
        else:
            changes = payments.changes_since(found, request)
            copy_id = owner(session, found.id)
            if copy_id is not None:
                changes.append(f"order copy {copy_id} took it as its target")
            # Of the requests that asked under this key, the one that records the answer
            # owns the hold; the others never touch another request's hold.
            owns = answer is None or payments.settle_request(session, request, answer, now)
            if not owns:
                changes = changes or ["its payment was answered for another request; try again"]
                # Unless the sweeper gave the key up (voided, maybe before the gateway held
                # it): then nobody keeps this hold, and this request voids it again.
                orphaned = (
                    answer is not None
                    and answer.succeeded
                    and not payments.kept(session, request.idempotency_key)
                )
            elif answer is not None and not answer.succeeded:
                return [f"payment declined: {answer.message}"]
            problems = []
            if not changes:  # its lines read again: they are what is placed
                problems, placed = reserve_if_placeable(session, found)
                if not problems:
                    order_states.place(found, *placed, now, authorized=answer is not None)
                    events.record(session, [events.Change(found.id, mode, topics.ORDER_PLACE)], now)
                    # A failed renewal fixed with another card: its subscription takes it.
                    subscription_states.follow_fix(session, found, now)
                    return []
            # Held but not kept: this request's own hold, and no other, is voided.
            held = (
                payments.start_voiding(session, now, key=request.idempotency_key)
                if owns and answer is not None
                else []
            )
    if orphaned:
        payments.void_asked(gateways, request)
    if found is None:
        raise NotFoundError(f"order {order_id} does not exist in {mode} mode")
    if held:
        void_holds(sessions, gateways, held, now)
    if changes:
        raise OrderChangedError(order_id, changes)
    return problems


def cancel_order(
    sessions: sessionmaker[Session],
    order_id: str,
    mode: Mode,
    *,
    gateways: Gateways,
    now: datetime | None = None,
) -> list[str]:
    """Cancel the order, release its stock, and void its uncaptured payment or refund what
    is captured and not yet refunded; returns why not (nothing changed), what failed
    after the cancellation committed (a void left for the sweeper, a refund declined),
    or ``[]``.

    Raises OrderBusyError if a copy owns the order, OrderStateError while a capture or
    refund of it is asked for and not answered, GatewayUnavailableError if the refund got
    no answer (the order is cancelled; ``_refund`` of the same amount asks again).
    """
    now = now or utcnow()
    with _changing(sessions, order_id, mode) as (session, order):
        problems = order_states.problems_cancelling(order)
        if problems:
            return problems
        under_way = transactions.problems_cancelling(session, order)
        if under_way:
            raise OrderStateError(order.id, order.status, "; ".join(under_way))
        refund = transactions.refund_on_cancel(session, order, now)
        order_states.cancel(order, now)
        events.record(session, [events.Change(order.id, mode, topics.ORDER_CANCEL)], now)
        stock.release(session, order.id, mode)
        held = payments.start_voiding(session, now, order_id=order.id)
    problems = void_holds(sessions, gateways, held, now)
    if refund is not None:
        answer = _ask_and_settle(sessions, gateways, refund, now)
        if not answer.succeeded:
            problems.append(
                f"order {order_id} is cancelled, but its refund was declined: {answer.message}"
            )
    return problems


def capture_order(
    sessions: sessionmaker[Session],
    order_id: str,
    mode: Mode,
    *,
    gateways: Gateways,
    now: datetime | None = None,
) -> None:
    """Capture the order's authorized payment in full (``paid``).

    Raises OrderBusyError if a copy owns the order, OrderStateError if it has no
    authorized payment to capture, PaymentDeclinedError, GatewayUnavailableError (the
    capture stays asked for: asking again replays its key).
    """
    now = now or utcnow()
    with _changing(sessions, order_id, mode) as (session, order):
        asked = transactions.capture_to_ask(session, order, now)
    _check_succeeded(_ask_and_settle(sessions, gateways, asked, now), asked)


def refund_order(
    sessions: sessionmaker[Session],
    order_id: str,
    mode: Mode,
    amount_cents: int | None,
    *,
    field: str,
    gateways: Gateways,
    now: datetime | None = None,
) -> None:
    """Refund ``amount_cents`` (None: all that is left) of what the order's payment
    captured (``partially_refunded``, then ``refunded``).

    Raises CopyInputError(``field``) for more than is left to refund, OrderStateError if
    nothing is captured, PaymentDeclinedError, GatewayUnavailableError (the refund stays
    asked for: a refund of the same amount replays its key).
    """
    now = now or utcnow()
    with _changing(sessions, order_id, mode) as (session, order):
        asked = transactions.refund_to_ask(session, order, amount_cents, now, field=field)
        if asked is None:
            raise OrderStateError(order.id, order.status, "nothing is left to refund")
    _check_succeeded(_ask_and_settle(sessions, gateways, asked, now), asked)


def void_order(
    sessions: sessionmaker[Session],
    order_id: str,
    mode: Mode,
    *,
    gateways: Gateways,
    now: datetime | None = None,
) -> list[str]:
    """Void the order's uncaptured authorization (``voided``; the order stays placed);
    returns what failed (left ``voiding`` for the sweeper) or ``[]``.

    Raises OrderBusyError if a copy owns the order, OrderStateError if its payment is not
    authorized or a capture of it is under way.
    """
    now = now or utcnow()
    with _changing(sessions, order_id, mode) as (session, order):
        if order.status not in order_states.CANCELLABLE:
            raise OrderStateError(
                order.id, order.status, "only a placed or approved order's payment can be voided"
            )
        transactions.check_none_under_way(
            order, transactions.of_order(session, order.id), TransactionKind.CAPTURE
        )
        if order.payment_status != PaymentStatus.AUTHORIZED:
            raise OrderStateError(
                order.id,
                order.status,
                f"its payment is {order.payment_status}: only an authorized payment can be voided",
            )
        order_states.void_payment(order)
        held = payments.start_voiding(session, now, order_id=order.id)
    return void_holds(sessions, gateways, held, now)


def _ask_and_settle(
    sessions: sessionmaker[Session],
    gateways: Gateways,
    asked: transactions.Asked,
    now: datetime,
) -> GatewayAnswer:
    """Ask the gateway (no transaction open), then record its answer under the order's
    row lock: the answer recorded under the key, this one's or another request's."""
    answer = transactions.ask(gateways, asked)
    with sessions.begin() as session:
        order = session.get(Order, asked.order_id, with_for_update=True)
        if order is None:  # deleted meanwhile, its payment rows with it
            raise NotFoundError(f"order {asked.order_id} does not exist")
        return transactions.settle(session, order, asked, answer, now)


def _check_succeeded(answer: GatewayAnswer, asked: transactions.Asked) -> None:
    if not answer.succeeded:
        raise transactions.PaymentDeclinedError(asked.kind, answer.message)


def void_holds(
    sessions: sessionmaker[Session],
    gateways: Gateways,
    held: list[PaymentAuthorization],
    now: datetime,
) -> list[str]:
    """Void ``held`` at their gateways (idempotent; no transaction open), then record it;
    returns what failed (left ``voiding`` for the sweeper)."""
    voided, problems = payments.void_remote(gateways, held)
    if voided:
        with sessions.begin() as session:
            payments.mark_voided(session, voided, now)
    return problems


def void_each(
    sessions: sessionmaker[Session],
    gateways: Gateways,
    held: list[PaymentAuthorization],
    now: datetime,
) -> dict[str, list[str]]:
    """:func:`void_holds`, a hold at a time: one gateway's trouble leaves the others'
    voids done, and what fails is left ``voiding`` for the sweeper. Returns the problems
    by payment id."""
    problems: dict[str, list[str]] = {}
    for hold in held:
        try:
            failed = void_holds(sessions, gateways, [hold], now)
        except Exception as error:  # a gateway's or the database's: taken again later
            failed = [one_line(error)]
        if failed:
            problems[hold.id] = failed
    return problems


def void_abandoned(
    sessions: sessionmaker[Session],
    gateways: Gateways,
    now: datetime,
    *,
    older_than: timedelta,
    limit: int,
) -> int:
    """Void the holds left behind (the sweeper's call): payments asked for, or being
    voided, by a process that died before it recorded the end (untouched for
    ``older_than``, longer than any gateway call may take). A void of a key the gateway
    never authorized changes nothing there. Returns how many were taken over."""
    with sessions.begin() as session:
        left = payments.claim_abandoned(session, now - older_than, now, limit)
    orders = {hold.id: hold.order_id for hold in left}
    for payment_id, problems in void_each(sessions, gateways, left, now).items():
        log.warning(
            "abandoned_payment_not_voided",
            payment_id=payment_id,
            order_id=orders[payment_id],
            problems=problems,
        )
    return len(left)


def settle_abandoned(
    sessions: sessionmaker[Session],
    gateways: Gateways,
    now: datetime,
    *,
    older_than: timedelta,
    limit: int,
) -> int:
    """Ask again, under their keys, the captures and refunds left ``requested`` for
    ``older_than`` (the sweeper's call), and record the answers: the gateway gives each key
    its first answer, so nothing moves twice. One that still gets no answer is left for
    the next sweep. Returns how many were asked."""
    with sessions.begin() as session:
        left = transactions.claim_abandoned(session, now - older_than, now, limit)
    for asked in left:
        try:
            _ask_and_settle(sessions, gateways, asked, now)
        except Exception as error:  # a gateway's or the database's: taken again later
            log.warning(
                "abandoned_transaction_not_settled",
                transaction_id=asked.id,
                order_id=asked.order_id,
                problem=one_line(error),
            )
    return len(left)
