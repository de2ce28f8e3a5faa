"""Payments around a gateway call: what to ask, what the answer changes, what to void.

Callers read with :func:`request_for`, call :func:`ask` with no transaction
open, then write the answers with :func:`record_answers` in a new transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from copying.orders import order_states, wallet
from copying.orders.gateways import GatewayAnswer, Gateways
from models import (
    AuthorizationStatus,
    Mode,
    Order,
    PaymentAuthorization,
    PaymentTransaction,
    TransactionKind,
    TransactionStatus,
    new_public_id,
)
from models.dialects import insert_rows


@dataclass(frozen=True)
class PaymentRequest:
    order_id: str
    idempotency_key: str
    gateway: str
    token: str
    amount_cents: int
    currency_code: str
    #: The wallet entry the order was charged to when asked (None: not from the wallet).
    wallet_entry_id: str | None
    #: The answer already recorded under this key, if any: replayed, not asked again.
    recorded: GatewayAnswer | None
    #: Asked for before under this key and never answered (a run given up): the answer
    #: settles that row (:func:`settle_request`), unless the sweeper took it meanwhile.
    waiting: bool = False


#: A hold the order has: kept, and asked for again under the same key it replays.
LIVE = frozenset({AuthorizationStatus.AUTHORIZED, AuthorizationStatus.CAPTURED})


def request_for(
    session: Session, order: Order, key_base: str, *, fresh: bool = False
) -> PaymentRequest:
    """The authorization to ask for ``order``'s total under keys starting with ``key_base``.

    A held authorization is always reused, so an order never holds two payments; so is a
    key asked for and never answered (a run given up), so that the gateway holds it once.
    Any other answer is final for its key (declined, voided), so the next try asks under a
    new key numbered by those so far. ``fresh``:
    nothing was ever asked under ``key_base`` (a key made for this request, or an order
    made in this transaction): nothing is read.
    """
    answers = (
        []
        if fresh
        else session.scalars(
            select(PaymentAuthorization).where(
                PaymentAuthorization.order_id == order.id,
                PaymentAuthorization.idempotency_key.startswith(key_base, autoescape=True),
            )
        ).all()
    )
    held = next((a for a in answers if a.status in LIVE), None)
    asked = next((a for a in answers if a.status == AuthorizationStatus.REQUESTED), None)
    reused = held or asked
    return PaymentRequest(
        order_id=order.id,
        idempotency_key=reused.idempotency_key
        if reused
        else (key_base if not answers else f"{key_base}:{len(answers) + 1}"),
        gateway=order.payment_gateway or "test",
        token=order.payment_source_token or "",
        amount_cents=order.total_amount_cents,
        currency_code=order.currency_code,
        wallet_entry_id=order.customer_payment_source_id,
        recorded=GatewayAnswer(True, held.gateway_reference, "recorded") if held else None,
        waiting=held is None and asked is not None,
    )


class Asked(wallet.Charged, Protocol):
    """What placing compares of an order with what was asked for it (an ``Order``, or the
    row of :data:`ASKED_COLUMNS`)."""

    @property
    def status(self) -> str: ...
    @property
    def total_amount_cents(self) -> int: ...
    @property
    def currency_code(self) -> str: ...


#: An order's columns that :class:`Asked` reads, and what checking its wallet entry reads.
ASKED_COLUMNS = (
    Order.id,
    Order.mode,
    Order.customer_id,
    Order.status,
    Order.total_amount_cents,
    Order.currency_code,
    Order.customer_payment_source_id,
    Order.payment_source_token,
    Order.payment_gateway,
)


def placing_key_base(order: Order) -> str:
    """The key base a request to place ``order`` asks under (``request_for``):
    ``order:<id>:place:<digest>``, the digest naming what is asked for (amount, currency,
    gateway, payment source). A payment already asked for exactly this and not yet
    answered (a double click, or a retry after the gateway did not answer) is then asked
    for again under its own key, so the gateway holds it once: of the requests sharing
    it, the one that records its answer keeps it."""
    asked = (
        f"{order.total_amount_cents}|{order.currency_code}|{order.payment_gateway}|"
        f"{order.payment_source_token or ''}|{order.customer_payment_source_id}"
    )
    return f"order:{order.id}:place:{hashlib.sha256(asked.encode()).hexdigest()[:12]}"


def changes_since(order: Asked, request: PaymentRequest) -> list[str]:
    """How ``order`` now differs from what ``request`` asked to hold for it (empty: it is
    still exactly that). The order is read under its row lock by the caller."""
    changes = []
    if order.status not in order_states.PLACEABLE:
        changes.append(f"it is {order.status} now")
    if order.total_amount_cents != request.amount_cents:
        changes.append(
            f"its total is {order.total_amount_cents} cents now, "
            f"{request.amount_cents} were asked for"
        )
    if order.currency_code != request.currency_code:
        changes.append(f"its currency is {order.currency_code} now, not {request.currency_code}")
    if (
        order.customer_payment_source_id != request.wallet_entry_id
        or (order.payment_source_token or "") != request.token
        or (order.payment_gateway or "test") != request.gateway
    ):
        changes.append("its payment source changed")
    return changes


def ask(gateways: Gateways, request: PaymentRequest) -> GatewayAnswer:
    """The gateway's answer (a remote call: hold no transaction open around it)."""
    if request.recorded is not None:
        return request.recorded
    gateway = gateways.get(request.gateway)
    if gateway is None:
        return GatewayAnswer(False, None, f"payment gateway {request.gateway!r} is not configured")
    return gateway.authorize(
        idempotency_key=request.idempotency_key,
        order_id=request.order_id,
        token=request.token,
        amount_cents=request.amount_cents,
        currency_code=request.currency_code,
    )


def record_answers(
    session: Session,
    answers: Sequence[tuple[Mode, PaymentRequest, GatewayAnswer]],
    now: datetime,
) -> None:
    """Store each answer for its ``request.order_id`` (of its ``mode``) under its
    idempotency key (a second store is a no-op), in one statement. Does not commit."""
    _insert(
        session,
        [
            _row(
                mode,
                request,
                AuthorizationStatus.AUTHORIZED
                if answer.succeeded
                else AuthorizationStatus.DECLINED,
                answer.reference,
                answer.message,
                now,
            )
            for mode, request, answer in answers
        ],
    )


def record_requests(
    session: Session, requests: Sequence[tuple[Mode, PaymentRequest]], now: datetime
) -> None:
    """Write down, before asking, that these holds may come to exist (``requested``): if
    the caller dies during the call, the sweeper voids them. One asked for before and
    still waiting (``PaymentRequest.waiting``) counts as asked for now: the sweeper leaves
    it be for another window. Does not commit."""
    waiting = [request.idempotency_key for _, request in requests if request.waiting]
    if waiting:
        session.execute(
            update(PaymentAuthorization)
            .where(
                PaymentAuthorization.idempotency_key.in_(waiting),
                PaymentAuthorization.status == AuthorizationStatus.REQUESTED,
            )
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )
    _insert(
        session,
        [
            _row(mode, request, AuthorizationStatus.REQUESTED, None, "asked for", now)
            for mode, request in requests
            if not request.waiting
        ],
    )


def under_key(session: Session, key: str) -> list[PaymentAuthorization]:
    """The payment recorded under ``key`` (none or one)."""
    return list(
        session.scalars(
            select(PaymentAuthorization).where(PaymentAuthorization.idempotency_key == key)
        )
    )


def kept(session: Session, key: str) -> bool:
    """Whether the payment under ``key`` is held by its order (another request settled it),
    not given up by the sweeper nor gone."""
    return any(payment.status in LIVE for payment in under_key(session, key))


def void_asked(gateways: Gateways, request: PaymentRequest) -> None:
    """Void ``request``'s key at its gateway (idempotent), for a hold that no row can keep:
    its order is gone, or the sweeper gave the key up before the gateway answered."""
    gateway = gateways.get(request.gateway)
    if gateway is not None:
        gateway.void(
            idempotency_key=request.idempotency_key,
            order_id=request.order_id,
            authorization_reference=None,
        )


def _row(
    mode: Mode,
    request: PaymentRequest,
    status: AuthorizationStatus,
    reference: str | None,
    message: str,
    now: datetime,
) -> dict[str, object]:
    return {
        "id": new_public_id(),
        "mode": mode,
        "order_id": request.order_id,
        "amount_cents": request.amount_cents,
        "currency_code": request.currency_code,
        "gateway": request.gateway,
        "gateway_reference": reference,
        "idempotency_key": request.idempotency_key,
        "status": status,
        "message": message[:1024],
        "created_at": now,
        "updated_at": now,
    }


def _insert(session: Session, rows: list[dict[str, object]]) -> None:
    """One statement; a key already recorded stays as it is."""
    insert_rows(
        session,
        PaymentAuthorization.__table__,  # type: ignore[arg-type]
        rows,
        skip_conflicts_on=["idempotency_key"],
    )


def settle_request(
    session: Session, request: PaymentRequest, answer: GatewayAnswer, now: datetime
) -> bool:
    """Record the answer to a ``requested`` payment (``authorized`` or ``declined``). False
    when the row was no longer ``requested`` (the sweeper gave it up as abandoned and
    voided it): then nothing changed, and the hold must not be kept. Does not commit."""
    settled = session.execute(
        update(PaymentAuthorization)
        .where(
            PaymentAuthorization.idempotency_key == request.idempotency_key,
            PaymentAuthorization.status == AuthorizationStatus.REQUESTED,
        )
        .values(
            status=AuthorizationStatus.AUTHORIZED
            if answer.succeeded
            else AuthorizationStatus.DECLINED,
            gateway_reference=answer.reference,
            message=answer.message[:1024],
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(settled.rowcount)  # type: ignore[attr-defined]


def start_voiding(
    session: Session, now: datetime, *, order_id: str | None = None, key: str | None = None
) -> list[PaymentAuthorization]:
    """Mark the live holds of ``order_id`` (its cancellation commits with this), or the
    one under ``key`` (held but not kept), ``voiding`` and return them for
    :func:`void_remote`; the sweeper finishes a void left behind. Does not commit."""
    held = list(
        session.scalars(
            select(PaymentAuthorization).where(
                PaymentAuthorization.status == AuthorizationStatus.AUTHORIZED,
                PaymentAuthorization.order_id == order_id
                if order_id is not None
                else PaymentAuthorization.idempotency_key == key,
            )
        )
    )
    _mark_voiding(session, held, now)
    return held


def claim_abandoned(
    session: Session, before: datetime, now: datetime, limit: int
) -> list[PaymentAuthorization]:
    """Take over the payments asked for or being voided and last touched before
    ``before`` (left by a process that died during its gateway call or its void): marked
    ``voiding`` and touched now, so that a late answer can no longer settle them and
    another sweeper leaves them be; returned for :func:`void_remote`. Does not commit."""
    rows = session.scalars(
        select(PaymentAuthorization)
        .where(
            PaymentAuthorization.status.in_(
                [AuthorizationStatus.REQUESTED, AuthorizationStatus.VOIDING]
            ),
            PaymentAuthorization.updated_at < before,
        )
        .order_by(PaymentAuthorization.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    _mark_voiding(session, rows, now)
    return list(rows)


def _mark_voiding(session: Session, rows: Sequence[PaymentAuthorization], now: datetime) -> None:
    """Mark ``rows`` ``voiding`` and write their voids down ``requested`` (a void's row is
    keyed by its authorization's key: one per hold, however often it is asked)."""
    if rows:
        session.execute(
            update(PaymentAuthorization)
            .where(PaymentAuthorization.id.in_([r.id for r in rows]))
            .values(status=AuthorizationStatus.VOIDING, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        insert_rows(
            session,
            PaymentTransaction.__table__,  # type: ignore[arg-type]
            [
                {
                    "id": new_public_id(),
                    "mode": r.mode,
                    "kind": TransactionKind.VOID,
                    "order_id": r.order_id,
                    "authorization_id": r.id,
                    "capture_id": None,
                    "amount_cents": r.amount_cents,
                    "currency_code": r.currency_code,
                    "gateway": r.gateway,
                    "gateway_reference": r.gateway_reference,
                    "idempotency_key": f"{r.idempotency_key}:void",
                    "status": TransactionStatus.REQUESTED,
                    "message": "asked for",
                    "settled_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
                for r in rows
            ],
            skip_conflicts_on=["idempotency_key"],
        )


def being_voided(session: Session, order_id: str) -> list[PaymentAuthorization]:
    """The order's holds marked ``voiding`` and not yet voided (a run resumed after its
    source's cancellation voids them)."""
    return list(
        session.scalars(
            select(PaymentAuthorization).where(
                PaymentAuthorization.order_id == order_id,
                PaymentAuthorization.status == AuthorizationStatus.VOIDING,
            )
        )
    )


def void_remote(
    gateways: Gateways, held: Sequence[PaymentAuthorization]
) -> tuple[list[str], list[str]]:
    """Void each hold at its gateway (idempotent); returns (voided ids, problems)."""
    voided, problems = [], []
    for authorization in held:
        gateway = gateways.get(authorization.gateway)
        if gateway is None:
            problems.append(
                f"payment {authorization.id} not voided: gateway "
                f"{authorization.gateway!r} is not configured"
            )
            continue
        gateway.void(
            idempotency_key=authorization.idempotency_key,
            order_id=authorization.order_id,
            authorization_reference=authorization.gateway_reference,
        )
        voided.append(authorization.id)
    return voided, problems


def mark_voided(session: Session, authorization_ids: Sequence[str], now: datetime) -> None:
    """Record voids already made at the gateway (of holds marked ``voiding`` first: a
    hold is never voided while it may still be kept). Does not commit."""
    if authorization_ids:
        session.execute(
            update(PaymentAuthorization)
            .where(
                PaymentAuthorization.id.in_(authorization_ids),
                PaymentAuthorization.status == AuthorizationStatus.VOIDING,
            )
            .values(status=AuthorizationStatus.VOIDED, voided_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(PaymentTransaction)
            .where(
                PaymentTransaction.authorization_id.in_(authorization_ids),
                PaymentTransaction.kind == TransactionKind.VOID,
                PaymentTransaction.status == TransactionStatus.REQUESTED,
            )
            .values(
                status=TransactionStatus.SUCCEEDED, message="voided", settled_at=now, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
