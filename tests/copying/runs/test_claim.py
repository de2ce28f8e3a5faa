"""Claiming and fencing: one run owns a copy; a run that lost it writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect, update

from copying.copies import copy_states
from copying.orders.gateways import GatewayAnswer, GatewayUnavailableError, TestGateway
from copying.runs import Outcome, RunConfig, execute
from copying.testing import failpoints
from models import (
    Address,
    AuthorizationStatus,
    CopyStatus,
    CopyStep,
    Order,
    OrderCopy,
    OrderStatus,
    Sku,
    db,
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


def _snapshot(row: OrderCopy) -> dict:
    return {attr.key: getattr(row, attr.key) for attr in inspect(OrderCopy).column_attrs}


def _copy_of_shop(sessions, clock, **options):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10)
    return shop, create_copy(sessions, shop.source.id, now=clock.now, **options)


def test_a_finished_copy_is_not_claimed_again(sessions, gateways, clock):
    shop, copy = _copy_of_shop(sessions, clock, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED
    with sessions.begin() as s:
        before = _snapshot(s.get_one(OrderCopy, copy.id))
        events_before = len(copy_events(s, copy.id))

    clock.advance(3600)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.NOT_CLAIMED

    with sessions.begin() as s:
        assert _snapshot(s.get_one(OrderCopy, copy.id)) == before
        assert len(copy_events(s, copy.id)) == events_before
        assert s.get_one(Sku, shop.sku.id).stock_quantity == 8
        assert len(authorizations(s, before["target_order_id"])) == 1
        assert len(customer_orders(s, shop.customer.id)) == 2


def test_a_failed_copy_is_not_claimed_until_retried(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s, stock=0)
    copy = create_copy(sessions, shop.source.id)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED
    with sessions.begin() as s:
        before = _snapshot(s.get_one(OrderCopy, copy.id))

    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.NOT_CLAIMED

    with sessions.begin() as s:
        assert _snapshot(s.get_one(OrderCopy, copy.id)) == before


def test_an_unknown_copy_is_not_claimed(sessions, gateways, clock):
    assert execute_one(sessions, "NoSuchCopy", gateways=gateways, clock=clock) == (
        Outcome.NOT_CLAIMED
    )


def test_claim_sets_the_lease_and_started_at_once(sessions, clock):
    _, copy = _copy_of_shop(sessions, clock)
    first = clock.now

    with sessions.begin() as s:
        assert copy_states.claim(s, copy.id, clock.now, LEASE, 8) is not None
        claimed = s.get_one(OrderCopy, copy.id, populate_existing=True)
    assert (claimed.status, claimed.attempt, claimed.claims) == (CopyStatus.IN_PROGRESS, 1, 1)
    assert (claimed.started_at, claimed.lease_expires_at) == (first, first + LEASE)

    clock.advance(10)
    with sessions.begin() as s:
        assert copy_states.claim(s, copy.id, clock.now, LEASE, 8) is None  # lease still held

    clock.advance(LEASE.total_seconds())  # now past the lease
    with sessions.begin() as s:
        assert copy_states.claim(s, copy.id, clock.now, LEASE, 8) is not None
        rescued = s.get_one(OrderCopy, copy.id, populate_existing=True)
    assert (rescued.attempt, rescued.claims) == (2, 2)
    assert (rescued.started_at, rescued.lease_expires_at) == (first, clock.now + LEASE)


def test_no_claim_once_the_claims_are_used_up(sessions, gateways, clock):
    _, copy = _copy_of_shop(sessions, clock)
    with sessions.begin() as s:
        s.execute(
            update(OrderCopy)
            .where(OrderCopy.id == copy.id)
            .values(
                status=CopyStatus.IN_PROGRESS,
                attempt=3,
                claims=3,
                lease_expires_at=clock.now - timedelta(seconds=1),
            )
        )

    config = RunConfig(max_claims=3)
    assert (
        execute_one(sessions, copy.id, gateways=gateways, config=config, clock=clock)
        == Outcome.NOT_CLAIMED
    )
    assert (
        execute_one(
            sessions, copy.id, gateways=gateways, config=RunConfig(max_claims=4), clock=clock
        )
        == Outcome.COMPLETED
    )


def test_no_claim_before_next_attempt_at(sessions, gateways, clock):
    _, copy = _copy_of_shop(sessions, clock)
    with sessions.begin() as s:
        s.execute(
            update(OrderCopy)
            .where(OrderCopy.id == copy.id)
            .values(next_attempt_at=clock.now + timedelta(minutes=5))
        )

    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.NOT_CLAIMED
    clock.advance(300)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED


def _claim_as_another_worker(sessions, copy_id: str) -> None:
    """What a competing claim does to the row: a new attempt takes it over."""
    with sessions.begin() as s:
        s.execute(
            update(OrderCopy)
            .where(OrderCopy.id == copy_id)
            .values(attempt=OrderCopy.attempt + 1, claims=OrderCopy.claims + 1)
        )


def test_a_run_that_lost_its_claim_writes_nothing(sessions, gateways, clock, monkeypatch):
    shop, copy = _copy_of_shop(sessions, clock, place_target_order=True)
    real_hit = failpoints.hit

    def another_claim_meanwhile(name: str) -> None:
        if name == "after_claim":
            _claim_as_another_worker(sessions, copy.id)
        real_hit(name)

    monkeypatch.setattr(failpoints, "hit", another_claim_meanwhile)

    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.LEASE_LOST

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        events = copy_events(s, copy.id)
        orders = customer_orders(s, shop.customer.id)
        addresses = s.query(Address).count()
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
    assert (row.status, row.attempt) == (CopyStatus.IN_PROGRESS, 2)
    assert (row.step, row.target_order_id) == (None, None)
    assert (row.errors_log, row.errors_count) == ({}, 0)
    assert (row.completed_at, row.failed_at) == (None, None)
    assert [(e.kind, e.attempt) for e in events] == [("created", 0), ("claimed", 1)]
    assert [o.id for o in orders] == [shop.source.id]
    assert addresses == 2  # the source's own
    assert stock == 10


class _StallingGateway:
    """The test gateway, but while it is asked the run's lease runs out and another claims it."""

    def __init__(self, on_authorize, *, then_fail: bool = False) -> None:
        self._inner = TestGateway(db.engine)
        self._on_authorize = on_authorize
        self._then_fail = then_fail

    def authorize(self, **request) -> GatewayAnswer:
        self._on_authorize()
        answer = self._inner.authorize(**request)
        if self._then_fail:
            raise GatewayUnavailableError("test gateway: timed out")
        return answer

    def void(self, **request) -> None:
        self._inner.void(**request)


def test_a_stalled_run_loses_the_copy_and_the_new_run_reuses_its_authorization(
    sessions, gateways, clock
):
    shop, copy = _copy_of_shop(sessions, clock, place_target_order=True)
    takeover_at = clock.now + LEASE + timedelta(seconds=1)

    def lease_runs_out() -> None:
        with sessions.begin() as s:
            assert copy_states.claim(s, copy.id, takeover_at, LEASE, 8) is not None

    stalled = {"test": _StallingGateway(lease_runs_out)}
    assert execute_one(sessions, copy.id, gateways=stalled, clock=clock) == Outcome.LEASE_LOST

    key = f"order_copy:{copy.id}:place"
    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        charge = gateway_charge(s, key)
    # The gateway answered, but the stale run recorded nothing of it.
    assert charge.outcome == "authorized"
    assert (row.attempt, row.step, row.status) == (
        2,
        CopyStep.STOCK_RESERVED,
        CopyStatus.IN_PROGRESS,
    )
    assert target.status == OrderStatus.PENDING
    with sessions.begin() as s:
        assert authorizations(s, target.id) == []
        assert s.get_one(Sku, shop.sku.id).stock_quantity == 8

    # The run that took over died too; the next one resumes at the held stock.
    clock.now = takeover_at + LEASE + timedelta(seconds=1)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        target = s.get_one(Order, row.target_order_id)
        [payment] = authorizations(s, target.id)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
    assert (row.status, row.attempt) == (CopyStatus.COMPLETED, 3)
    assert target.status == OrderStatus.PLACED
    assert (payment.idempotency_key, payment.status) == (key, AuthorizationStatus.AUTHORIZED)
    assert payment.gateway_reference == charge.reference
    assert stock == 8


def test_a_stale_run_with_transient_trouble_is_told_it_lost_the_copy(sessions, clock):
    _, copy = _copy_of_shop(sessions, clock, place_target_order=True)

    def another_claim() -> None:
        _claim_as_another_worker(sessions, copy.id)

    stalled = {"test": _StallingGateway(another_claim, then_fail=True)}
    assert execute_one(sessions, copy.id, gateways=stalled, clock=clock) == Outcome.LEASE_LOST

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        kinds = [e.kind for e in copy_events(s, copy.id)]
    # The newer run's lease is untouched (a parked copy would have it expired now).
    assert (row.attempt, row.lease_expires_at) == (2, clock.now + LEASE)
    assert "transient_error" not in kinds


# --- timestamps and counts --------------------------------------------------------------


def test_timestamps_of_a_completed_copy(sessions, gateways, clock):
    _, copy = _copy_of_shop(sessions, clock, place_target_order=True)
    clock.advance(7)
    started = clock.now

    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        events = copy_events(s, copy.id)
    assert row.created_at == started - timedelta(seconds=7)
    assert (row.started_at, row.completed_at, row.failed_at) == (started, started, None)
    assert (row.lease_expires_at, row.updated_at) == (None, started)
    assert (row.attempt, row.claims) == (1, 1)
    assert [(e.kind, e.data.get("step")) for e in events] == [
        ("created", None),
        ("claimed", None),
        ("checkpoint", "target_built"),
        ("checkpoint", "stock_reserved"),
        ("completed", "target_placed"),
    ]


def test_errors_count_is_the_number_of_messages(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=3, stock=1)
        shop.entry.disabled = True

    copy = create_copy(sessions, shop.source.id)
    clock.advance(2)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
    assert row.errors_log == {
        "line_items": [f"SKU {shop.sku.code} is out of stock (3 requested, 1 left)"],
        "payment_source": [f"wallet entry {shop.entry.id} is disabled"],
    }
    assert row.errors_count == sum(len(messages) for messages in row.errors_log.values()) == 2
    assert (row.started_at, row.failed_at, row.completed_at) == (clock.now, clock.now, None)


@pytest.mark.parametrize("failpoint", ["after_claim", "after_build"])
def test_a_crashed_run_keeps_its_lease_until_it_expires(sessions, gateways, clock, failpoint):
    _, copy = _copy_of_shop(sessions, clock, place_target_order=True)
    started = clock.now
    with failpoints.enabled(failpoint):
        assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.CRASHED

    clock.advance(LEASE.total_seconds() - 1)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.NOT_CLAIMED
    clock.advance(1)  # a lease that expires at T is over at T
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
    assert (row.attempt, row.started_at, row.completed_at) == (2, started, clock.now)


# --- claiming many at once (a batch) ----------------------------------------------------


def test_a_batch_claims_its_due_copies_in_one_go_and_each_runs_on_its_own(
    sessions, gateways, clock
):
    copies = [_copy_of_shop(sessions, clock, place_target_order=True)[1] for _ in range(3)]
    done, held, due = copies
    assert execute_one(sessions, done.id, gateways=gateways, clock=clock) == Outcome.COMPLETED
    with sessions.begin() as s:
        assert copy_states.claim(s, held.id, clock.now, LEASE, 8) is not None
    config = RunConfig()

    ran = execute(
        sessions, [held.id, due.id, done.id, due.id], gateways=gateways, config=config, clock=clock
    )

    assert ran.outcome == {
        held.id: Outcome.NOT_CLAIMED,
        due.id: Outcome.COMPLETED,
        done.id: Outcome.NOT_CLAIMED,
    }
    with sessions.begin() as s:
        assert [e.kind for e in copy_events(s, due.id)][:2] == ["created", "claimed"]
        assert s.get_one(OrderCopy, due.id).attempt == 1
    with sessions.begin() as s:
        assert s.get_one(OrderCopy, due.id).status == CopyStatus.COMPLETED
        assert s.get_one(OrderCopy, held.id).status == CopyStatus.IN_PROGRESS
