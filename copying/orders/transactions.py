"""Captures and refunds of an order's authorized payment: what to ask, what the answer
changes (voids are ``payments``' two-step voids, recorded here as rows too).

The one rule for every payment effect holds: the caller decides under the order's row
lock and writes the transaction down as ``requested`` under its key
(:func:`capture_to_ask`, :func:`refund_to_ask`), asks the gateway with no transaction
open (:func:`ask`), then records the answer in a new transaction, under the order's row
lock again (:func:`settle`). A request that dies during the call leaves its row
``requested``: the next request asking for the same thing replays its key, and the
gateway gives it the first answer.

Keys: ``order:<id>:capture:<n>`` and ``order:<id>:refund:<n>``, ``n`` counting the
order's captures (refunds) asked for, so that a new request gets a new key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from copying.errors import CopyInputError, OrderStateError
from copying.orders import order_states
from copying.orders.gateways import GatewayAnswer, Gateways
from models import (
    AuthorizationStatus,
    Order,
    PaymentAuthorization,
    PaymentStatus,
    PaymentTransaction,
    TransactionKind,
    TransactionStatus,
    new_public_id,
)

#: An order's payment statuses from which what is captured can be refunded.
REFUNDABLE = frozenset({PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED})


class PaymentDeclinedError(Exception):
    """The gateway declined the capture or refund (a business answer, never retried by
    itself): nothing was recorded as succeeded."""

    def __init__(self, kind: TransactionKind, message: str) -> None:
        super().__init__(f"{kind} declined: {message}")
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Asked:
    """A capture or refund written down ``requested``, to ask its gateway for."""

    id: str
    kind: TransactionKind
    order_id: str
    idempotency_key: str
    gateway: str
    #: The key and the gateway's reference of what it takes from: the authorization
    #: (a capture), or the capture (a refund).
    parent_key: str
    parent_reference: str | None
    amount_cents: int
    currency_code: str


def of_order(session: Session, order_id: str) -> list[PaymentTransaction]:
    """The order's captures, refunds and voids, oldest first."""
    return list(
        session.scalars(
            select(PaymentTransaction)
            .where(PaymentTransaction.order_id == order_id)
            .order_by(PaymentTransaction.created_at, PaymentTransaction.id)
        )
    )


def check_none_under_way(
    order: Order, rows: Sequence[PaymentTransaction], *kinds: TransactionKind
) -> None:
    """Raise OrderStateError if a capture or refund of ``kinds`` was asked for and not yet
    answered: what it will change is not known yet. Caller holds the order's row lock."""
    for row in rows:
        if row.kind in kinds and row.status == TransactionStatus.REQUESTED:
            raise OrderStateError(
                order.id,
                order.status,
                f"its {row.kind} {row.id} was asked for and not answered yet; ask for that "
                f"{row.kind} again (it replays the same request), then try again",
            )


def problems_cancelling(session: Session, order: Order) -> list[str]:
    """Why ``order`` may not be cancelled now as far as its payment goes: a capture or
    refund of it was asked for and not answered (what it changes is not known yet). Caller
    holds the order's row lock."""
    rows = of_order(session, order.id)
    under_way = _waiting(rows, TransactionKind.CAPTURE) + _waiting(rows, TransactionKind.REFUND)
    return [
        f"order {order.id} not cancelled: its {r.kind} {r.id} was asked for and not answered"
        f" yet; ask for that {r.kind} again (it replays the same request), then cancel"
        for r in under_way[:1]
    ]


def refund_on_cancel(session: Session, order: Order, now: datetime) -> Asked | None:
    """The refund of all that ``order`` has captured and not refunded, written down
    ``requested`` as it is cancelled (None: nothing captured, or nothing left). Caller holds
    the order's row lock and checked :func:`problems_cancelling`. Does not commit."""
    if order.payment_status not in REFUNDABLE:
        return None
    return refund_to_ask(session, order, None, now, field="_cancel")


def refunds_asked(session: Session, order_id: str) -> list[Asked]:
    """The order's refunds asked for and not answered (a cancellation's, left by a run
    that stopped before it had the answer): asked again under their keys."""
    return [
        _asked(session, r) for r in _waiting(of_order(session, order_id), TransactionKind.REFUND)
    ]


def claim_abandoned(session: Session, before: datetime, now: datetime, limit: int) -> list[Asked]:
    """The captures and refunds asked for and last touched before ``before`` (their request
    died, or gave up after the gateway did not answer), touched now so that another
    sweeper leaves them be for a window; to ask again under their keys. Does not commit."""
    rows = session.scalars(
        select(PaymentTransaction)
        .where(
            PaymentTransaction.status == TransactionStatus.REQUESTED,
            PaymentTransaction.kind.in_([TransactionKind.CAPTURE, TransactionKind.REFUND]),
            PaymentTransaction.updated_at < before,
        )
        .order_by(PaymentTransaction.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        row.updated_at = now
    return [_asked(session, row) for row in rows]


def capture_to_ask(session: Session, order: Order, now: datetime) -> Asked:
    """The capture of ``order``'s authorized payment (all of it), written ``requested``;
    one already asked for and not answered is asked for again under its key. Raises
    OrderStateError if the order has no authorized payment to capture. Caller holds the
    order's row lock. Does not commit."""
    if order.status not in order_states.CANCELLABLE:
        raise OrderStateError(
            order.id, order.status, "only a placed or approved order's payment can be captured"
        )
    rows = of_order(session, order.id)
    waiting = _waiting(rows, TransactionKind.CAPTURE)
    if waiting:
        return _asked(session, waiting[0])
    authorization = _authorized(session, order)
    if order.payment_status != PaymentStatus.AUTHORIZED or authorization is None:
        raise OrderStateError(
            order.id,
            order.status,
            f"its payment is {order.payment_status}: only an authorized payment can be captured",
        )
    check_none_under_way(order, rows, TransactionKind.REFUND)
    return _write(
        session,
        order,
        TransactionKind.CAPTURE,
        authorization,
        None,
        authorization.amount_cents,
        _count(rows, TransactionKind.CAPTURE),
        now,
    )


def refund_to_ask(
    session: Session, order: Order, amount_cents: int | None, now: datetime, *, field: str
) -> Asked | None:
    """A refund of ``amount_cents`` (None: all that is left) of ``order``'s capture,
    written ``requested``. A refund of the same amount asked for and not answered is
    the same request asked again (a double click, or a retry after the gateway did not
    answer): it is asked for under its key. What refunds not yet answered may give back
    counts as given back, so concurrent refunds never add up to more than was captured.
    None when nothing is left to refund and none was asked for. Raises
    CopyInputError(``field``) for an amount that is not left to refund, OrderStateError
    if nothing was captured. Caller holds the order's row lock. Does not commit."""
    rows = of_order(session, order.id)
    if order.payment_status not in REFUNDABLE:
        raise OrderStateError(
            order.id,
            order.status,
            f"its payment is {order.payment_status}: only a captured payment can be refunded",
        )
    check_none_under_way(order, rows, TransactionKind.CAPTURE)
    capture = next(
        (
            r
            for r in rows
            if r.kind == TransactionKind.CAPTURE and r.status == TransactionStatus.SUCCEEDED
        ),
        None,
    )
    if capture is None:  # not reached: a paid order's capture succeeded
        raise OrderStateError(order.id, order.status, "it has no capture to refund")
    left = capture.amount_cents - sum(
        r.amount_cents
        for r in rows
        if r.kind == TransactionKind.REFUND
        and r.capture_id == capture.id
        and r.status != TransactionStatus.FAILED
    )
    waiting = _waiting(rows, TransactionKind.REFUND)
    same = [r for r in waiting if amount_cents in (None, r.amount_cents)]
    if same:
        return _asked(session, same[0])
    amount = left if amount_cents is None else amount_cents
    if amount_cents is None and left == 0:
        return None
    if amount <= 0:
        raise CopyInputError(field, f"a refund is of 1 cent or more, not {amount}")
    if amount > left:
        raise CopyInputError(
            field,
            f"{amount} cents is more than the {left} cents of order {order.id}'s capture "
            "left to refund" + (" (refunds under way counted)" if waiting else ""),
        )
    authorization = session.get(PaymentAuthorization, capture.authorization_id)
    assert authorization is not None  # its capture's: cascades with it
    return _write(
        session,
        order,
        TransactionKind.REFUND,
        authorization,
        capture,
        amount,
        _count(rows, TransactionKind.REFUND),
        now,
    )


def ask(gateways: Gateways, asked: Asked) -> GatewayAnswer:
    """The gateway's answer (a remote call: hold no transaction open around it). Raises
    GatewayUnavailableError when it does not answer: ask again under the same key."""
    gateway = gateways.get(asked.gateway)
    if gateway is None:
        return GatewayAnswer(False, None, f"payment gateway {asked.gateway!r} is not configured")
    if asked.kind == TransactionKind.CAPTURE:
        return gateway.capture(
            idempotency_key=asked.idempotency_key,
            order_id=asked.order_id,
            authorization_key=asked.parent_key,
            authorization_reference=asked.parent_reference,
            amount_cents=asked.amount_cents,
            currency_code=asked.currency_code,
        )
    return gateway.refund(
        idempotency_key=asked.idempotency_key,
        order_id=asked.order_id,
        capture_key=asked.parent_key,
        capture_reference=asked.parent_reference,
        amount_cents=asked.amount_cents,
        currency_code=asked.currency_code,
    )


def settle(
    session: Session, order: Order, asked: Asked, answer: GatewayAnswer, now: datetime
) -> GatewayAnswer:
    """Record the answer to ``asked`` and what it changes (a capture: the authorization
    ``captured``, the order ``paid``; a refund: ``partially_refunded`` or ``refunded``).
    Of the requests that asked under the same key, the first to settle records it; the
    others get the answer it recorded. Caller holds the order's row lock. Does not commit.
    """
    settled = session.execute(
        update(PaymentTransaction)
        .where(
            PaymentTransaction.id == asked.id,
            PaymentTransaction.status == TransactionStatus.REQUESTED,
        )
        .values(
            status=TransactionStatus.SUCCEEDED if answer.succeeded else TransactionStatus.FAILED,
            gateway_reference=answer.reference,
            message=answer.message[:1024],
            settled_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if not settled.rowcount:  # type: ignore[attr-defined]
        row = session.get(PaymentTransaction, asked.id, populate_existing=True)
        assert row is not None  # its order is locked and there
        return GatewayAnswer(
            row.status == TransactionStatus.SUCCEEDED, row.gateway_reference, row.message or ""
        )
    if answer.succeeded and asked.kind == TransactionKind.CAPTURE:
        session.execute(
            update(PaymentAuthorization)
            .where(
                PaymentAuthorization.order_id == order.id,
                PaymentAuthorization.idempotency_key == asked.parent_key,
            )
            .values(status=AuthorizationStatus.CAPTURED, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        order_states.pay(order)
    elif answer.succeeded:
        rows = of_order(session, order.id)
        order_states.refund(
            order, _total(rows, TransactionKind.CAPTURE), _total(rows, TransactionKind.REFUND)
        )
    return answer


def _waiting(rows: Sequence[PaymentTransaction], kind: TransactionKind) -> list[PaymentTransaction]:
    return [r for r in rows if r.kind == kind and r.status == TransactionStatus.REQUESTED]


def _count(rows: Sequence[PaymentTransaction], kind: TransactionKind) -> int:
    return sum(1 for r in rows if r.kind == kind)


def _total(rows: Sequence[PaymentTransaction], kind: TransactionKind) -> int:
    return sum(
        r.amount_cents for r in rows if r.kind == kind and r.status == TransactionStatus.SUCCEEDED
    )


def _authorized(session: Session, order: Order) -> PaymentAuthorization | None:
    return session.scalars(
        select(PaymentAuthorization).where(
            PaymentAuthorization.order_id == order.id,
            PaymentAuthorization.status == AuthorizationStatus.AUTHORIZED,
        )
    ).first()


def _write(
    session: Session,
    order: Order,
    kind: TransactionKind,
    authorization: PaymentAuthorization,
    capture: PaymentTransaction | None,
    amount_cents: int,
    asked_before: int,
    now: datetime,
) -> Asked:
    row = PaymentTransaction(
        id=new_public_id(),
        mode=order.mode,
        kind=kind,
        order_id=order.id,
        authorization_id=authorization.id,
        capture_id=capture.id if capture else None,
        amount_cents=amount_cents,
        currency_code=authorization.currency_code,
        gateway=authorization.gateway,
        idempotency_key=f"order:{order.id}:{kind}:{asked_before + 1}",
        status=TransactionStatus.REQUESTED,
        message="asked for",
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return _asked_of(row, authorization, capture)


def _asked(session: Session, row: PaymentTransaction) -> Asked:
    authorization = session.get(PaymentAuthorization, row.authorization_id)
    capture = session.get(PaymentTransaction, row.capture_id) if row.capture_id else None
    assert authorization is not None  # the row's: cascades with it
    return _asked_of(row, authorization, capture)


def _asked_of(
    row: PaymentTransaction,
    authorization: PaymentAuthorization,
    capture: PaymentTransaction | None,
) -> Asked:
    parent_key, parent_reference = (
        (capture.idempotency_key, capture.gateway_reference)
        if capture is not None
        else (authorization.idempotency_key, authorization.gateway_reference)
    )
    return Asked(
        id=row.id,
        kind=row.kind,
        order_id=row.order_id,
        idempotency_key=row.idempotency_key,
        gateway=row.gateway,
        parent_key=parent_key,
        parent_reference=parent_reference,
        amount_cents=row.amount_cents,
        currency_code=row.currency_code,
    )
