"""The one rule for every payment effect, ownership, the wallet at placing time and stock
given back as recorded, at the domain's level.

Races are made deterministic with a gateway that, while it is being asked, lets another
request or an edit happen (the remote call is the window no transaction covers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from copying.copies import lifecycle
from copying.errors import (
    InUseError,
    NotFoundError,
    OrderBusyError,
    OrderChangedError,
    one_line,
)
from copying.orders import order_edits, payments, placing
from copying.orders.gateways import GatewayAnswer, Gateways, GatewayUnavailableError
from copying.runs import Outcome, RunConfig, execute
from copying.testing import failpoints
from models import (
    AuthorizationStatus,
    CopyStatus,
    CopyStep,
    CustomerPaymentSource,
    LineItem,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    PaymentAuthorization,
    Sku,
    TestGatewayCharge,
    utcnow,
)
from tests.copying.gateways import Meddling
from tests.factories import (
    Line,
    authorizations,
    create_copy,
    gateway_charge,
    make_order,
    make_shop,
)
from tests.runs import execute_one


def _pending(sessions, **shop):
    with sessions.begin() as s:
        made = make_shop(s, **shop)
        order = make_order(s, [Line(made.sku, 2)], customer=made.customer, wallet_entry=made.entry)
    return made, order


def _live_holds(sessions, order_id):
    with sessions.begin() as s:
        held = [a for a in authorizations(s, order_id) if a.status in payments.LIVE]
        ledger = [gateway_charge(s, a.idempotency_key) for a in authorizations(s, order_id)]
    live_at_gateway = [c for c in ledger if c and c.outcome == "authorized" and not c.voided_at]
    return held, live_at_gateway


def test_a_place_that_loses_the_race_never_voids_the_winners_hold(sessions, gateways):
    shop, order = _pending(sessions)
    answers = []

    def double_click() -> None:
        answers.append(placing.place_order(sessions, order.id, Mode.TEST, gateways=gateways))

    meddling = Meddling(gateways, double_click)
    with pytest.raises(OrderChangedError, match="is placed now"):
        placing.place_order(sessions, order.id, Mode.TEST, gateways={"test": meddling})

    assert answers == [[]]  # the second click placed it
    held, live = _live_holds(sessions, order.id)
    with sessions.begin() as s:
        placed = s.get_one(Order, order.id)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
    assert placed.status == OrderStatus.PLACED
    assert [(a.amount_cents, a.status) for a in held] == [(2000, AuthorizationStatus.AUTHORIZED)]
    assert [c.idempotency_key for c in live] == [held[0].idempotency_key]
    # Both clicks asked under one key: the gateway holds the payment once.
    assert len(set(meddling.calls)) == 1
    assert stock == 10 - 2  # taken once


def test_a_total_changed_while_asking_is_not_placed_and_the_hold_is_voided(sessions, gateways):
    shop, order = _pending(sessions)

    def add_a_line() -> None:
        with sessions.begin() as s:
            make_line = LineItem(
                mode=Mode.TEST,
                order_id=order.id,
                position=1,
                item_type="skus",
                sku_code=shop.sku.code,
                name="more",
                quantity=1,
                unit_amount_cents=1000,
                total_amount_cents=1000,
            )
            s.add(make_line)
            s.execute(update(Order).where(Order.id == order.id).values(total_amount_cents=3000))

    with pytest.raises(OrderChangedError, match="total is 3000 cents now, 2000 were asked for"):
        placing.place_order(
            sessions, order.id, Mode.TEST, gateways={"test": Meddling(gateways, add_a_line)}
        )

    held, live = _live_holds(sessions, order.id)
    with sessions.begin() as s:
        [payment] = authorizations(s, order.id)
        status = s.get_one(Order, order.id).status
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
    assert (held, live) == ([], [])
    assert payment.status == AuthorizationStatus.VOIDED
    assert status == OrderStatus.PENDING
    assert stock == 10  # nothing taken


@pytest.mark.parametrize("change", ["disabled", "expired", "token"])
def test_a_wallet_entry_changed_while_asking_is_not_charged(sessions, gateways, change):
    shop, order = _pending(sessions)

    def change_entry() -> None:
        with sessions.begin() as s:
            entry = s.get_one(CustomerPaymentSource, shop.entry.id)
            if change == "disabled":
                entry.disabled = True
            elif change == "expired":
                entry.expires_on = entry.created_at.date() - timedelta(days=1)
            else:
                entry.payment_source_token = "tok_other"

    problems = placing.place_order(
        sessions, order.id, Mode.TEST, gateways={"test": Meddling(gateways, change_entry)}
    )

    assert len(problems) == 1
    assert f"wallet entry {shop.entry.id}" in problems[0]
    assert _live_holds(sessions, order.id) == ([], [])
    with sessions.begin() as s:
        assert s.get_one(Order, order.id).status == OrderStatus.PENDING


def test_placing_checks_the_wallet_entry_before_asking(sessions, gateways):
    shop, order = _pending(sessions)
    with sessions.begin() as s:
        s.get_one(Order, order.id).customer_id = make_shop(s).customer.id  # another customer

    problems = placing.place_order(sessions, order.id, Mode.TEST, gateways=gateways)

    assert problems == [f"wallet entry {shop.entry.id} belongs to another customer"]
    with sessions.begin() as s:
        assert authorizations(s, order.id) == []  # the gateway was never asked


def test_stock_given_back_is_what_was_taken(sessions, gateways):
    shop, order = _pending(sessions)
    assert placing.place_order(sessions, order.id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:  # the lines drift after placing (by hand, by a bug)
        s.execute(update(LineItem).where(LineItem.order_id == order.id).values(quantity=7))

    assert placing.cancel_order(sessions, order.id, Mode.TEST, gateways=gateways) == []

    with sessions.begin() as s:
        assert s.get_one(Sku, shop.sku.id).stock_quantity == 10  # the 2 taken, not 7
        lines = s.scalars(select(LineItem).where(LineItem.order_id == order.id)).all()
        assert {line.reserved_quantity for line in lines} == {0}


def test_a_running_copys_target_belongs_to_the_copy(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s, token="tok_flaky")
    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    with pytest.raises(GatewayUnavailableError):  # waits between its steps, stock held
        execute_one(sessions, copy.id, gateways=gateways, clock=clock)
    with sessions.begin() as s:
        target_id = s.get_one(OrderCopy, copy.id).target_order_id

    for act in (placing.place_order, placing.cancel_order):
        with pytest.raises(OrderBusyError, match=f"order copy {copy.id}"):
            act(sessions, target_id, Mode.TEST, gateways=gateways)

    # Once the copy ends, the order is the customer's again.
    with pytest.raises(GatewayUnavailableError):
        execute_one(sessions, copy.id, gateways=gateways, clock=clock)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED
    assert placing.cancel_order(sessions, target_id, Mode.TEST, gateways=gateways) == []


@pytest.mark.parametrize("in_chunk", [False, True])
def test_a_copy_whose_wallet_entry_is_disabled_while_asking_voids_its_hold(
    sessions, gateways, clock, in_chunk
):
    with sessions.begin() as s:
        shop = make_shop(s)
    copy = create_copy(sessions, shop.source.id, place_target_order=True)

    def disable() -> None:
        with sessions.begin() as s:
            s.get_one(CustomerPaymentSource, shop.entry.id).disabled = True

    meddling = {"test": Meddling(gateways, disable)}
    if in_chunk:  # with another copy, whose entry stays enabled
        with sessions.begin() as s:
            other_shop = make_shop(s)
        other = create_copy(sessions, other_shop.source.id, place_target_order=True)
        ran = execute(sessions, [copy.id, other.id], gateways=meddling, clock=clock)
        assert ran.outcome == {copy.id: Outcome.FAILED, other.id: Outcome.COMPLETED}
    else:
        outcome = execute_one(sessions, copy.id, gateways=meddling, clock=clock)
        assert outcome == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        stock = s.get_one(Sku, shop.sku.id).stock_quantity
    assert row.errors_log == {"payment_source": [f"wallet entry {shop.entry.id} is disabled"]}
    assert (row.status, row.step) == (CopyStatus.FAILED, CopyStep.TARGET_BUILT)
    assert _live_holds(sessions, row.target_order_id) == ([], [])
    assert stock == 10  # the target's 2 given back


def _given_up(sessions, gateways, clock):
    """A copy whose payment the gateway authorized, the answer lost, its runs used up."""
    with sessions.begin() as s:
        shop = make_shop(s)
    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    timed_out = {"test": Meddling(gateways, lambda: None, then_fail=True)}
    config = RunConfig(max_claims=1)
    outcome = execute_one(sessions, copy.id, gateways=timed_out, config=config, clock=clock)
    assert outcome == Outcome.FAILED
    return copy, shop


def test_a_hold_left_by_a_given_up_copy_is_voided_by_the_sweeper(sessions, gateways, clock):
    copy, _ = _given_up(sessions, gateways, clock)
    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        [asked] = authorizations(s, row.target_order_id)
    assert asked.status == AuthorizationStatus.REQUESTED
    assert gateway_charge_live(sessions, asked.idempotency_key)

    too_soon = placing.void_abandoned(
        sessions, gateways, clock.now, older_than=timedelta(minutes=5), limit=10
    )
    later = placing.void_abandoned(
        sessions,
        gateways,
        clock.now + timedelta(minutes=6),
        older_than=timedelta(minutes=5),
        limit=10,
    )

    assert (too_soon, later) == (0, 1)
    assert not gateway_charge_live(sessions, asked.idempotency_key)
    with sessions.begin() as s:
        assert s.get_one(PaymentAuthorization, asked.id).status == AuthorizationStatus.VOIDED


def _given_up_at_the_gateway(sessions, gateways, clock):
    """:func:`_given_up`, then retried by ops."""
    copy, shop = _given_up(sessions, gateways, clock)
    with sessions.begin() as s:
        lifecycle.retry(s, copy.id, Mode.TEST, by="ops", now=clock.now)
        target_id = s.get_one(OrderCopy, copy.id).target_order_id
    return copy, target_id, shop.sku.id


def test_a_given_up_copy_retried_asks_again_under_the_key_it_left(sessions, gateways, clock):
    copy, target_id, _ = _given_up_at_the_gateway(sessions, gateways, clock)

    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    # One key, held once at the gateway, and no payment left for the sweeper.
    held, live = _live_holds(sessions, target_id)
    with sessions.begin() as s:
        keys = [a.idempotency_key for a in authorizations(s, target_id)]
    assert keys == [f"order_copy:{copy.id}:place"]
    assert [a.idempotency_key for a in held] == [c.idempotency_key for c in live] == keys
    assert (
        placing.void_abandoned(
            sessions,
            gateways,
            clock.now + timedelta(hours=1),
            older_than=timedelta(minutes=5),
            limit=9,
        )
        == 0
    )


def test_a_retried_copy_whose_key_the_sweeper_took_meanwhile_keeps_nothing(
    sessions, gateways, clock
):
    copy, target_id, sku_id = _given_up_at_the_gateway(sessions, gateways, clock)

    def sweep_an_hour_later() -> None:
        assert (
            placing.void_abandoned(
                sessions,
                gateways,
                clock.now + timedelta(hours=1),
                older_than=timedelta(minutes=5),
                limit=9,
            )
            == 1
        )

    meddling = {"test": Meddling(gateways, sweep_an_hour_later)}
    assert execute_one(sessions, copy.id, gateways=meddling, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, copy.id)
        stock = s.get_one(Sku, sku_id).stock_quantity
    assert row.errors_log == {"payment": ["the payment was given up as abandoned meanwhile"]}
    assert _live_holds(sessions, target_id) == ([], [])
    assert stock == 10  # the target's stock given back


def test_an_answer_that_comes_after_the_sweeper_took_the_payment_is_not_kept(
    sessions, gateways, clock
):
    _, order = _pending(sessions)
    with sessions.begin() as s:
        asked = s.get_one(Order, order.id)
        request = payments.request_for(s, asked, payments.placing_key_base(asked))
        payments.record_requests(s, [(Mode.TEST, request)], clock.now)
    assert not request.waiting
    answer = payments.ask(gateways, request)
    placing.void_abandoned(
        sessions,
        gateways,
        clock.now + timedelta(hours=1),
        older_than=timedelta(minutes=5),
        limit=10,
    )

    with sessions.begin() as s:
        assert not payments.settle_request(s, request, answer, clock.now)
    assert not gateway_charge_live(sessions, request.idempotency_key)


def gateway_charge_live(sessions, key: str) -> bool:
    with sessions.begin() as s:
        charge = gateway_charge(s, key)
    return charge is not None and charge.outcome == "authorized" and charge.voided_at is None


def test_stored_error_text_is_one_bounded_line():
    error = RuntimeError("connection failed: host 10.0.0.1\n[SQL: SELECT secret FROM t]")
    long = RuntimeError("x" * 1000)

    assert one_line(error) == "connection failed: host 10.0.0.1"
    assert len(one_line(long)) == 300
    assert one_line(RuntimeError()) == "RuntimeError"


@dataclass
class SlowGateway:
    """The test gateway, with something happening before it answers the first call."""

    real: Gateways
    before: Callable[[], None]
    calls: int = 0

    def authorize(self, **asked: Any) -> GatewayAnswer:
        self.calls += 1
        if self.calls == 1:
            self.before()
        return self.real["test"].authorize(**asked)

    def void(self, **asked: Any) -> None:
        self.real["test"].void(**asked)


def _live_at_gateway(sessions, order_id):
    with sessions.begin() as s:
        return s.scalars(
            select(TestGatewayCharge.idempotency_key).where(
                TestGatewayCharge.idempotency_key.startswith(f"order:{order_id}:"),
                TestGatewayCharge.outcome == "authorized",
                TestGatewayCharge.voided_at.is_(None),
            )
        ).all()


def test_an_order_being_placed_cannot_be_deleted(sessions, gateways):
    _, order = _pending(sessions)
    refused = []

    def delete() -> None:
        with sessions.begin() as s, pytest.raises(InUseError) as raised:
            order_edits.delete_order(s, s.get_one(Order, order.id))
        refused.append(str(raised.value))

    assert (
        placing.place_order(
            sessions, order.id, Mode.TEST, gateways={"test": SlowGateway(gateways, delete)}
        )
        == []
    )
    assert refused == [f"order {order.id} has a payment under way; try again shortly"]


def test_a_hold_for_an_order_deleted_during_the_call_is_voided(sessions, gateways):
    _, order = _pending(sessions)

    def delete_behind_the_rules() -> None:  # as a cascade or a person with SQL would
        with sessions.begin() as s:
            s.delete(s.get_one(Order, order.id))

    with pytest.raises(NotFoundError):
        placing.place_order(
            sessions,
            order.id,
            Mode.TEST,
            gateways={"test": SlowGateway(gateways, delete_behind_the_rules)},
        )
    assert _live_at_gateway(sessions, order.id) == []


def test_an_answer_after_the_sweeper_gave_the_payment_up_is_voided_again(sessions, gateways):
    _, order = _pending(sessions)
    now = utcnow()

    def sweep_an_hour_later() -> None:
        taken = placing.void_abandoned(
            sessions, gateways, now + timedelta(hours=1), older_than=timedelta(minutes=5), limit=9
        )
        assert taken == 1  # voided before the gateway held anything

    with pytest.raises(OrderChangedError):
        placing.place_order(
            sessions,
            order.id,
            Mode.TEST,
            gateways={"test": SlowGateway(gateways, sweep_an_hour_later)},
            now=now,
        )
    assert _live_at_gateway(sessions, order.id) == []
    with sessions.begin() as s:
        assert [a.status for a in authorizations(s, order.id)] == [AuthorizationStatus.VOIDED]


def test_a_payment_asked_for_again_is_touched_so_the_sweeper_waits(sessions, gateways):
    with sessions.begin() as s:
        shop = make_shop(s, token="tok_flaky")
        order = make_order(s, [Line(shop.sku, 1)], customer=shop.customer, wallet_entry=shop.entry)
    start = utcnow()
    with pytest.raises(GatewayUnavailableError):  # the first click: no answer
        placing.place_order(sessions, order.id, Mode.TEST, gateways=gateways, now=start)
    retried = start + timedelta(minutes=4, seconds=59)

    def sweep() -> None:  # the next tick, 5 minutes after the first click
        assert (
            placing.void_abandoned(
                sessions,
                gateways,
                start + timedelta(minutes=5, seconds=1),
                older_than=timedelta(minutes=5),
                limit=9,
            )
            == 0
        )

    with pytest.raises(GatewayUnavailableError):  # tok_flaky: the second failure
        placing.place_order(
            sessions,
            order.id,
            Mode.TEST,
            gateways={"test": SlowGateway(gateways, sweep)},
            now=retried,
        )
    assert placing.place_order(sessions, order.id, Mode.TEST, gateways=gateways, now=retried) == []
    held, live = _live_holds(sessions, order.id)
    assert len(held) == len(live) == 1


def test_a_copy_does_not_cancel_a_source_another_running_copy_owns(sessions, gateways, clock):
    with sessions.begin() as s:
        shop = make_shop(s)
    first = create_copy(sessions, shop.source.id, place_target_order=True, cancel_source_order=True)
    with failpoints.enabled("after_place"):
        assert (
            execute_one(sessions, first.id, gateways=gateways, clock=clock) == Outcome.CRASHED
        )  # placed, not done
    with sessions.begin() as s:
        owned = s.get_one(OrderCopy, first.id).target_order_id
    second = create_copy(sessions, owned, cancel_source_order=True)

    assert execute_one(sessions, second.id, gateways=gateways, clock=clock) == Outcome.FAILED

    with sessions.begin() as s:
        row = s.get_one(OrderCopy, second.id)
        assert s.get_one(Order, owned).status == OrderStatus.PLACED
    assert row.errors_log == {
        "source_order": [f"source order {owned} belongs to order copy {first.id}"]
    }
