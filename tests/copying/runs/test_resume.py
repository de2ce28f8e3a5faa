"""A run that crashes anywhere is resumed from its last checkpoint: one target, one charge."""

from __future__ import annotations

import pytest

from copying.orders import placing
from copying.runs import Outcome, RunConfig
from copying.testing import failpoints
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
from tests.factories import (
    authorizations,
    copy_events,
    create_copy,
    customer_orders,
    gateway_charge,
    make_shop,
)
from tests.runs import execute_one

LEASE = RunConfig().lease

# Where the run dies, and the checkpoint the next run finds (a run that places builds and
# reserves in one transaction: after_build finds the stock reserved too).
CRASHES = [
    ("after_claim", None),
    ("after_build", CopyStep.STOCK_RESERVED),
    ("after_reserve", CopyStep.STOCK_RESERVED),
    ("after_authorize", CopyStep.STOCK_RESERVED),
    ("after_place", CopyStep.TARGET_PLACED),
    ("after_cancel", CopyStep.SOURCE_CANCELLED),
    ("after_void", CopyStep.SOURCE_CANCELLED),
    ("before_finish", CopyStep.SOURCE_CANCELLED),
]


@pytest.mark.parametrize(("failpoint", "checkpoint"), CRASHES)
def test_a_crashed_run_is_finished_by_the_next_once(
    sessions, gateways, clock, failpoint, checkpoint
):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10)
    assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    copy = create_copy(sessions, shop.source.id, place_target_order=True, cancel_source_order=True)
    started = clock.now

    with failpoints.enabled(failpoint):
        assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.CRASHED
    with sessions.begin() as s:
        crashed = s.get_one(OrderCopy, copy.id)
    assert (crashed.status, crashed.step) == (CopyStatus.IN_PROGRESS, checkpoint)

    clock.advance(LEASE.total_seconds() + 1)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    key = f"order_copy:{copy.id}:place"
    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        source = s.get_one(Order, shop.source.id)
        [payment] = authorizations(s, target.id)
        [source_payment] = authorizations(s, source.id)
        charge = gateway_charge(s, key)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
        all_orders = customer_orders(s, shop.customer.id)
        kinds = [e.kind for e in copy_events(s, copy.id)]
    assert (row.status, row.step, row.errors_log) == (
        CopyStatus.COMPLETED,
        CopyStep.SOURCE_CANCELLED,
        {},
    )
    assert (row.attempt, row.started_at, row.completed_at) == (2, started, clock.now)
    assert crashed.target_order_id in (None, target.id)
    assert [o.id for o in all_orders] == [source.id, target.id]
    assert (target.status, target.payment_status) == (OrderStatus.PLACED, PaymentStatus.AUTHORIZED)
    assert (payment.idempotency_key, payment.status) == (key, AuthorizationStatus.AUTHORIZED)
    assert payment.gateway_reference == charge.reference
    assert (source.status, source_payment.status) == (
        OrderStatus.CANCELLED,
        AuthorizationStatus.VOIDED,
    )
    # 10, minus 2 for the placed source, minus 2 for the target, plus 2 for the cancelled source.
    assert stock == 8
    assert kinds.count("completed") == 1
