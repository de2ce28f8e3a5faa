"""What a renewal's outcome does to its subscription, and the failure policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from copying.copies.dispatch import unit_of_work
from copying.errors import CopyInputError
from copying.orders import placing
from copying.runs import Outcome
from copying.subscriptions import history, renewals
from copying.subscriptions.subscription_states import FailurePolicy
from models import (
    CopyStatus,
    Mode,
    Order,
    OrderCopy,
    OrderSubscription,
    PaymentAuthorization,
    SubscriptionStatus,
)
from tests.copying.clock import FixedClock
from tests.factories import make_shop, make_subscription, make_wallet_entry
from tests.fixtures import Published
from tests.runs import execute_one

START = datetime(2026, 3, 1, 8, tzinfo=UTC)
DAY = 86400


def renew(sessions, now):
    with unit_of_work(sessions, Published()) as s:
        [copy_id] = renewals.tick(s, now, batch_size=10).copies
    return copy_id


def state(sessions, subscription_id, copy_id):
    with sessions.begin() as s:
        return s.get_one(OrderSubscription, subscription_id), s.get_one(OrderCopy, copy_id)


def declined_subscription(sessions, gateways, token):
    """A placed source paid with a good card; the subscription charges one declined
    (``token``) and opted into dunning: retries after a day and three, then deactivate."""
    with sessions.begin() as s:
        shop = make_shop(s)
        declined = make_wallet_entry(s, shop.customer, token=token)
    assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    with sessions.begin() as s:
        sub = make_subscription(
            s,
            s.get_one(Order, shop.source.id),
            starts_at=START,
            wallet_entry=declined,
            failure_policy={"retry_after_seconds": [DAY, 3 * DAY], "final_action": "deactivate"},
        )
    return sub.id, shop


@pytest.fixture
def declined_renewal(sessions, gateways):
    """Declined softly (insufficient funds): a retry may pass."""
    return declined_subscription(sessions, gateways, "tok_insufficient_funds")


@pytest.fixture
def hard_declined_renewal(sessions, gateways):
    """Declined for good (tok_declined): no retry can pass."""
    return declined_subscription(sessions, gateways, "tok_declined")


def test_a_completed_renewal_makes_the_subscription_active_again(sessions, gateways):
    with sessions.begin() as s:
        shop = make_shop(s)
        sub_id = make_subscription(s, shop.source, starts_at=START).id
    copy_id = renew(sessions, START)
    clock = FixedClock(START + timedelta(minutes=1))
    assert execute_one(sessions, copy_id, gateways=gateways, clock=clock) == Outcome.COMPLETED
    sub, copy = state(sessions, sub_id, copy_id)
    assert copy.status == CopyStatus.COMPLETED
    assert sub.status == SubscriptionStatus.ACTIVE
    assert sub.last_run_at == clock.now
    assert sub.occurrencies == 1
    assert sub.succeeded_on_last_run is True
    assert sub.errors_count == 0


def test_a_soft_declined_renewal_retries_on_schedule_then_deactivates(
    sessions, gateways, declined_renewal
):
    sub_id, _ = declined_renewal
    copy_id = renew(sessions, START)
    clock = FixedClock(START)
    waits = []
    for _ in range(3):
        assert execute_one(sessions, copy_id, gateways=gateways, clock=clock) == Outcome.FAILED
        sub, copy = state(sessions, sub_id, copy_id)
        waits.append(copy.next_attempt_at - clock.now if copy.next_attempt_at else None)
        # the subscription says when the retry runs, and waits for it active (not running)
        assert sub.next_attempt_at == copy.next_attempt_at
        if copy.next_attempt_at is not None:
            assert sub.status == SubscriptionStatus.ACTIVE
        if copy.status == CopyStatus.PENDING:
            # not claimable before its time, claimable after
            assert (
                execute_one(sessions, copy_id, gateways=gateways, clock=clock)
                == Outcome.NOT_CLAIMED
            )
            clock.now = copy.next_attempt_at
    assert waits == [timedelta(days=1), timedelta(days=3), None]
    assert copy.status == CopyStatus.FAILED
    assert copy.retries == 2
    assert sub.status == SubscriptionStatus.INACTIVE
    assert sub.errors_count == 3
    assert sub.occurrencies == 1  # one period's renewal, run three times
    assert sub.last_run_at == clock.now
    assert sub.succeeded_on_last_run is False
    with sessions.begin() as s:
        targets = s.scalars(select(OrderCopy.target_order_id).where(OrderCopy.id == copy_id)).all()
        keys = s.scalars(
            select(PaymentAuthorization.idempotency_key).where(
                PaymentAuthorization.order_id == targets[0]
            )
        ).all()
    assert sorted(keys) == [
        f"order_copy:{copy_id}:place",
        f"order_copy:{copy_id}:place:2",
        f"order_copy:{copy_id}:place:3",
    ]


def test_switching_the_wallet_entry_makes_the_next_retry_succeed(
    sessions, gateways, declined_renewal
):
    sub_id, shop = declined_renewal
    copy_id = renew(sessions, START)
    clock = FixedClock(START)
    assert execute_one(sessions, copy_id, gateways=gateways, clock=clock) == Outcome.FAILED
    _, failed = state(sessions, sub_id, copy_id)
    first_target = failed.target_order_id
    with sessions.begin() as s:
        s.get_one(OrderSubscription, sub_id).customer_payment_source_id = shop.entry.id
    clock.now = failed.next_attempt_at
    assert execute_one(sessions, copy_id, gateways=gateways, clock=clock) == Outcome.COMPLETED
    sub, copy = state(sessions, sub_id, copy_id)
    assert copy.target_order_id == first_target  # the same target, refilled
    assert sub.status == SubscriptionStatus.ACTIVE
    assert sub.occurrencies == 1
    with sessions.begin() as s:
        held = s.scalars(
            select(PaymentAuthorization.status).where(PaymentAuthorization.order_id == first_target)
        ).all()
    assert sorted(held) == ["authorized", "declined"]


@pytest.mark.parametrize(
    ("action", "status"),
    [("keep_active", SubscriptionStatus.ACTIVE), ("cancel", SubscriptionStatus.CANCELLED)],
)
def test_the_final_action_applies_when_no_retry_is_left(
    sessions, gateways, declined_renewal, action, status
):
    sub_id, _ = declined_renewal
    with sessions.begin() as s:
        s.get_one(OrderSubscription, sub_id).failure_policy = {
            "retry_after_seconds": [],
            "final_action": action,
        }
    copy_id = renew(sessions, START)
    assert (
        execute_one(sessions, copy_id, gateways=gateways, clock=FixedClock(START)) == Outcome.FAILED
    )
    sub, copy = state(sessions, sub_id, copy_id)
    assert copy.status == CopyStatus.FAILED
    assert sub.status == status
    assert (sub.next_run_at is None) == (action == "cancel")


def test_a_hard_declined_renewal_is_not_retried_and_takes_the_final_action_at_once(
    sessions, gateways, hard_declined_renewal
):
    sub_id, _ = hard_declined_renewal
    copy_id = renew(sessions, START)

    assert (
        execute_one(sessions, copy_id, gateways=gateways, clock=FixedClock(START)) == Outcome.FAILED
    )

    sub, copy = state(sessions, sub_id, copy_id)
    assert copy.status == CopyStatus.FAILED
    assert copy.next_attempt_at is None
    assert copy.retries == 0
    assert sub.status == SubscriptionStatus.INACTIVE  # its policy's final action
    assert sub.next_attempt_at is None
    with sessions.begin() as s:
        [(kind, data)] = history.of(s, sub_id)
    assert kind == "renewal_failed"
    assert data["next_attempt_at"] is None
    assert data["not_retried_because"] == "payment declined: card declined"


@pytest.mark.parametrize("token", ["tok_declined", "tok_insufficient_funds"])
def test_the_default_policy_keeps_the_subscription_active_for_the_next_period(
    sessions, gateways, token
):
    """Commerce Layer's: no retry within the period, active, the next run as planned."""
    with sessions.begin() as s:
        shop = make_shop(s)
        declined = make_wallet_entry(s, shop.customer, token=token)
        sub = make_subscription(s, shop.source, starts_at=START, wallet_entry=declined)
        sub.failure_policy = FailurePolicy().as_json()
        sub_id = sub.id
    copy_id = renew(sessions, START)
    with sessions.begin() as s:
        planned = s.get_one(OrderSubscription, sub_id).next_run_at

    clock = FixedClock(START + timedelta(minutes=1))
    assert execute_one(sessions, copy_id, gateways=gateways, clock=clock) == Outcome.FAILED

    sub, copy = state(sessions, sub_id, copy_id)
    assert copy.status == CopyStatus.FAILED
    assert copy.next_attempt_at is None
    assert sub.status == SubscriptionStatus.ACTIVE
    assert sub.next_run_at == planned == START + timedelta(days=31)
    assert sub.next_attempt_at is None
    assert (sub.occurrencies, sub.errors_count, sub.last_run_at) == (1, 1, clock.now)
    assert sub.succeeded_on_last_run is False


def test_the_default_policy_is_commerce_layers_no_retry_stay_active():
    assert FailurePolicy.parse({}).as_json() == {
        "retry_after_seconds": [],
        "final_action": "keep_active",
    }
    assert FailurePolicy.parse({"retry_after_seconds": [DAY]}).final_action == "keep_active"


@pytest.mark.parametrize(
    "raw",
    [
        {"retry_after_seconds": [10]},
        {"retry_after_seconds": "1d"},
        {"final_action": "explode"},
        {"retry": [DAY]},
        {"retry_after_seconds": [True]},
    ],
)
def test_bad_failure_policies_are_refused(raw):
    with pytest.raises(CopyInputError):
        FailurePolicy.parse(raw)
