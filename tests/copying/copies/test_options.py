"""Every option alone and combined: the 16 combinations of place_target_order,
cancel_source_order, reuse_wallet and skip_errors, from a placed source paid from the wallet."""

from __future__ import annotations

import itertools

import pytest

from copying.orders import placing
from copying.runs import Outcome
from models import (
    AuthorizationStatus,
    CopyStatus,
    CopyStep,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    PaymentStatus,
    Sku,
)
from tests.factories import authorizations, create_copy, make_shop
from tests.runs import execute_one

NO_PAYMENT_SOURCE = "payment_source is missing (the total is not zero)"
NOT_PLACED = "not cancelled: the target order was not placed"


def _expected(place: bool, cancel: bool, reuse: bool, skip: bool) -> dict:
    """What DESIGN.md's "What a copy does" says each combination ends with."""
    # Without the wallet the target has no payment source, so placing it fails.
    place_fails = place and not reuse
    errors: dict[str, list[str]] = {}
    if place_fails:
        errors["target_order"] = [NO_PAYMENT_SOURCE]
        if skip and cancel:
            errors["source_order"] = [NOT_PLACED]
    placed = place and not place_fails
    cancelled = cancel and not place_fails
    if cancelled:
        step = CopyStep.SOURCE_CANCELLED
    elif placed:
        step = CopyStep.TARGET_PLACED
    else:
        step = CopyStep.TARGET_BUILT
    return {
        "status": CopyStatus.COMPLETED if not errors or skip else CopyStatus.FAILED,
        "errors": errors,
        "placed": placed,
        "cancelled": cancelled,
        "step": step,
    }


OPTIONS = [
    pytest.param(
        *combo, id="-".join(n for n, on in zip("PCRS", combo, strict=True) if on) or "none"
    )
    for combo in itertools.product([False, True], repeat=4)
]


@pytest.mark.parametrize(("place", "cancel", "reuse", "skip"), OPTIONS)
def test_option_matrix(sessions, gateways, clock, place, cancel, reuse, skip):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10, price=1000)
    assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    expected = _expected(place, cancel, reuse, skip)

    copy = create_copy(
        sessions,
        shop.source.id,
        place_target_order=place,
        cancel_source_order=cancel,
        reuse_wallet=reuse,
        skip_errors=skip,
    )
    outcome = execute_one(sessions, copy.id, gateways=gateways, clock=clock)

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        source = s.get_one(Order, shop.source.id)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
        target_payments = authorizations(s, target.id)
        source_payments = authorizations(s, source.id)

    completed = expected["status"] == CopyStatus.COMPLETED
    assert outcome == (Outcome.COMPLETED if completed else Outcome.FAILED)
    assert row.status == expected["status"]
    assert row.errors_log == expected["errors"]
    assert row.errors_count == sum(len(m) for m in expected["errors"].values())
    assert row.step == expected["step"]
    assert row.started_at == clock.now
    assert (row.completed_at, row.failed_at) == (
        (clock.now, None) if completed else (None, clock.now)
    )

    # The target: always built, placed only when asked and payable.
    assert target.customer_id == source.customer_id
    if reuse:
        assert target.customer_payment_source_id == shop.entry.id
        assert target.payment_source_token == "tok_visa"
    else:
        assert (target.customer_payment_source_id, target.payment_source_token) == (None, None)
    if expected["placed"]:
        assert (target.status, target.payment_status) == (
            OrderStatus.PLACED,
            PaymentStatus.AUTHORIZED,
        )
        assert target.placed_at == clock.now
        assert [(a.idempotency_key, a.status, a.amount_cents) for a in target_payments] == [
            (f"order_copy:{copy.id}:place", AuthorizationStatus.AUTHORIZED, 2000)
        ]
    else:
        assert (target.status, target.payment_status) == (OrderStatus.PENDING, PaymentStatus.UNPAID)
        assert target.placed_at is None
        assert target_payments == []

    # The source: cancelled (stock back, payment voided) only when asked and allowed.
    [source_payment] = source_payments
    if expected["cancelled"]:
        assert (source.status, source.payment_status) == (
            OrderStatus.CANCELLED,
            PaymentStatus.VOIDED,
        )
        assert source.cancelled_at == clock.now
        assert (source_payment.status, source_payment.voided_at) == (
            AuthorizationStatus.VOIDED,
            clock.now,
        )
    else:
        assert (source.status, source.payment_status) == (
            OrderStatus.PLACED,
            PaymentStatus.AUTHORIZED,
        )
        assert source.cancelled_at is None
        assert (source_payment.status, source_payment.voided_at) == (
            AuthorizationStatus.AUTHORIZED,
            None,
        )

    # 10 in stock, 2 held by the placed source; the target takes 2, a cancelled source gives 2 back.
    assert stock == 10 - 2 - 2 * expected["placed"] + 2 * expected["cancelled"]
