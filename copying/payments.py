"""Payments around a gateway call: what to ask, what the answer changes, what to void.

Callers read with :func:`request_for`, call :func:`ask` with no transaction
open, then write the answer with :func:`record_answer` in a new transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from copying.gateways import GatewayAnswer, Gateways
from models import AuthorizationStatus, Mode, Order, PaymentAuthorization, new_public_id
from models.dialects import insert_rows


@dataclass(frozen=True)
class PaymentRequest:
    order_id: str
    idempotency_key: str
    gateway: str
    token: str
    amount_cents: int
    currency_code: str
    #: The answer already recorded under this key, if any: replayed, not asked again.
    recorded: GatewayAnswer | None


def request_for(
    session: Session, order: Order, key_base: str, *, new_order: bool = False
) -> PaymentRequest:
    """The authorization to ask for ``order``'s total under keys starting with ``key_base``.

    A decline is final for its key, so the next try (after the wallet was fixed)
    asks under a new key numbered by the declines so far; a held authorization
    is always reused, so an order never holds two payments. An order made in
    this transaction (``new_order``) has no answers yet: nothing is read.
    """
    answers = (
        []
        if new_order
        else session.scalars(
            select(PaymentAuthorization).where(
                PaymentAuthorization.order_id == order.id,
                PaymentAuthorization.idempotency_key.startswith(key_base, autoescape=True),
            )
        ).all()
    )
    held = next((a for a in answers if a.status != AuthorizationStatus.DECLINED), None)
    declines = sum(a.status == AuthorizationStatus.DECLINED for a in answers)
    return PaymentRequest(
        order_id=order.id,
        idempotency_key=held.idempotency_key
        if held
        else (key_base if declines == 0 else f"{key_base}:{declines + 1}"),
        gateway=order.payment_gateway or "test",
        token=order.payment_source_token or "",
        amount_cents=order.total_amount_cents,
        currency_code=order.currency_code,
        recorded=GatewayAnswer(True, held.gateway_reference, "recorded") if held else None,
    )


def ask(gateways: Gateways, request: PaymentRequest) -> GatewayAnswer:
    """The gateway's answer (a remote call: hold no transaction open around it)."""
    if request.recorded is not None:
        return request.recorded
    gateway = gateways.get(request.gateway)
    if gateway is None:
        return GatewayAnswer(False, None, f"payment gateway {request.gateway!r} is not configured")
    return gateway.authorize(
        idempotency_key=request.idempotency_key,
        token=request.token,
        amount_cents=request.amount_cents,
        currency_code=request.currency_code,
    )


def record_answer(
    session: Session, mode: Mode, request: PaymentRequest, answer: GatewayAnswer, now: datetime
) -> None:
    """Store the answer for ``request.order_id`` (of ``mode``) under its idempotency key (a
    second store is a no-op). Does not commit."""
    record_answers(session, [(mode, request, answer)], now)


def record_answers(
    session: Session,
    answers: Sequence[tuple[Mode, PaymentRequest, GatewayAnswer]],
    now: datetime,
) -> None:
    """:func:`record_answer` for many requests, in one statement. Does not commit."""
    insert_rows(
        session,
        PaymentAuthorization.__table__,  # type: ignore[arg-type]
        [
            {
                "id": new_public_id(),
                "mode": mode,
                "order_id": request.order_id,
                "amount_cents": request.amount_cents,
                "currency_code": request.currency_code,
                "gateway": request.gateway,
                "gateway_reference": answer.reference,
                "idempotency_key": request.idempotency_key,
                "status": (
                    AuthorizationStatus.AUTHORIZED
                    if answer.authorized
                    else AuthorizationStatus.DECLINED
                ),
                "message": answer.message[:1024],
                "created_at": now,
                "updated_at": now,
            }
            for mode, request, answer in answers
        ],
        skip_conflicts_on=["idempotency_key"],
    )


def held_authorizations(session: Session, order_id: str) -> list[PaymentAuthorization]:
    return list(
        session.scalars(
            select(PaymentAuthorization).where(
                PaymentAuthorization.order_id == order_id,
                PaymentAuthorization.status == AuthorizationStatus.AUTHORIZED,
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
        gateway.void(idempotency_key=authorization.idempotency_key)
        voided.append(authorization.id)
    return voided, problems


def mark_voided(session: Session, authorization_ids: Sequence[str], now: datetime) -> None:
    """Record voids already made at the gateway. Does not commit."""
    if authorization_ids:
        session.execute(
            update(PaymentAuthorization)
            .where(
                PaymentAuthorization.id.in_(authorization_ids),
                PaymentAuthorization.status == AuthorizationStatus.AUTHORIZED,
            )
            .values(status=AuthorizationStatus.VOIDED, voided_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
