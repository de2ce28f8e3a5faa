"""The invariants the chaos suite checks catch what they promise to catch (and nothing else)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from copying.copies import history, lifecycle
from copying.orders import placing
from copying.runs import Outcome
from models import (
    AuthorizationStatus,
    CopyStatus,
    CopyStep,
    Mode,
    Order,
    OrderCopy,
    OrderSubscription,
    PaymentAuthorization,
    new_public_id,
    utcnow,
)
from tests.factories import create_copy, make_shop, make_subscription
from tests.invariants import INVARIANTS, check, install_audit, source_cancellations
from tests.runs import execute_one


def placed_shop(sessions, gateways, *, stock=10):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=stock)
    assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    return shop


def broken(found):
    return {name: sentences for name, sentences in found.items() if sentences}


def test_a_copy_that_places_and_cancels_keeps_every_invariant(sessions, gateways):
    shop = placed_shop(sessions, gateways)
    copy = create_copy(sessions, shop.source.id, place_target_order=True, cancel_source_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways) == Outcome.COMPLETED
    with sessions.begin() as s:
        found = check(s, [copy.id], {shop.sku.code: 10})
        assert set(found) == set(INVARIANTS)
        assert broken(found) == {}
        assert source_cancellations(s, [copy.id]) == {copy.id: 1}


def test_two_copies_that_both_recorded_cancelling_one_source_are_caught(sessions, gateways):
    shop = placed_shop(sessions, gateways)
    first = create_copy(sessions, shop.source.id, cancel_source_order=True)
    assert execute_one(sessions, first.id, gateways=gateways) == Outcome.COMPLETED
    second = create_copy(sessions, shop.source.id, cancel_source_order=True)
    with sessions.begin() as s:  # as if a lost update had let a second run cancel it too
        history.record(s, second.id, Mode.TEST, 1, "claimed", step=None)
        history.record(s, second.id, Mode.TEST, 1, "checkpoint", step=CopyStep.SOURCE_CANCELLED)
        s.execute(update(OrderCopy).where(OrderCopy.id == second.id).values(status="failed"))
    with sessions.begin() as s:
        found = broken(check(s, [first.id, second.id], {shop.sku.code: 10}))
    assert list(found) == ["source_cancelled_once"]
    assert f"source order {shop.source.id} cancelled 2 times" in found["source_cancelled_once"][0]


def test_a_run_resumed_after_the_cancellation_counts_it_once(sessions, gateways):
    shop = placed_shop(sessions, gateways)
    copy = create_copy(sessions, shop.source.id, cancel_source_order=True)
    with sessions.begin() as s:  # a run cancelled, died; the next one resumed and finished
        history.record(s, copy.id, Mode.TEST, 1, "claimed", step=None)
        history.record(s, copy.id, Mode.TEST, 1, "checkpoint", step=CopyStep.SOURCE_CANCELLED)
        history.record(s, copy.id, Mode.TEST, 2, "claimed", step=CopyStep.SOURCE_CANCELLED)
        history.record(s, copy.id, Mode.TEST, 2, "completed", step=CopyStep.SOURCE_CANCELLED)
        assert source_cancellations(s, [copy.id]) == {copy.id: 1}


def test_the_audit_catches_a_second_void_that_changed_nothing_visible(sessions):
    with sessions.begin() as s:
        install_audit(s.connection())
        shop = make_shop(s)
        authorization = PaymentAuthorization(
            id=new_public_id(),
            order_id=shop.source.id,
            amount_cents=2000,
            currency_code="USD",
            gateway="test",
            idempotency_key=f"order:{shop.source.id}:place",
            status=AuthorizationStatus.AUTHORIZED,
        )
        s.add(authorization)
        s.flush()
        void = (
            update(PaymentAuthorization)
            .where(PaymentAuthorization.id == authorization.id)
            .values(status=AuthorizationStatus.VOIDED)
        )
        s.execute(void)
        assert check(s, [], {})["voided_once"] == []
        s.execute(void)  # the same value written again: a second void all the same
        found = check(s, [], {})
    assert found["voided_once"] == [
        f"payment_authorizations {authorization.id}: authorization voided 2 times"
    ]


def test_a_subscription_counting_more_runs_than_renewals_ended_is_caught(sessions, gateways):
    shop = placed_shop(sessions, gateways)
    with sessions.begin() as s:
        subscription = make_subscription(
            s, s.get_one(Order, shop.source.id), starts_at=utcnow() - timedelta(days=1)
        )
        copy = lifecycle.create(
            s,
            mode=Mode.TEST,
            source_order_id=shop.source.id,
            order_subscription_id=subscription.id,
            period_key="2026-01-01T00:00:00Z",
        )
        s.execute(update(OrderCopy).where(OrderCopy.id == copy.id).values(status="completed"))
        s.execute(
            update(OrderSubscription)
            .where(OrderSubscription.id == subscription.id)
            .values(occurrencies=2)
        )
    with sessions.begin() as s:
        found = broken(check(s, [copy.id], {}))
    assert found["period_renewed_once"] == [
        f"subscription {subscription.id} counts 2 runs, 1 renewals ended"
    ]
    assert set(found) <= {"period_renewed_once", "one_target"}  # completed with no target


def test_an_unfinished_copy_breaks_only_the_first_invariant(sessions, gateways):
    shop = placed_shop(sessions, gateways)
    copy = create_copy(sessions, shop.source.id)
    with sessions.begin() as s:
        found = broken(check(s, [copy.id], {shop.sku.code: 10}))
    assert found == {"finished": [f"{copy.id} is still {CopyStatus.PENDING}"]}


def test_a_copy_that_was_acknowledged_but_is_gone_is_lost(sessions):
    with sessions.begin() as s:
        found = broken(check(s, ["NoSuchCopy"], {}))
    assert found == {"not_lost": ["NoSuchCopy does not exist"]}
