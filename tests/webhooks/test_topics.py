"""Order and subscription topics: each is owed once per change and listening webhook, by
every path that makes the change (a chunk of copies, the API's and the CLI's domain
functions, a renewal's outcome, the tick), and by no path that does not."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.orders import placing
from copying.runs import Outcome, execute
from copying.subscriptions import renewals, subscription_states
from copying.testing import failpoints
from copying.webhooks import topics
from models import (
    CopyStatus,
    CustomerPaymentSource,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    OrderSubscription,
    SubscriptionStatus,
)
from tests.copying.clock import FixedClock
from tests.factories import create_copy, make_shop, make_subscription, make_wallet_entry
from tests.fixtures import Published
from tests.runs import execute_one
from tests.webhooks.test_events import listen, owed

PLACE, CANCEL = topics.ORDER_PLACE, topics.ORDER_CANCEL
#: Every subscription topic a domain function writes (destroy is the API's).
SUBSCRIPTION_TOPICS = (
    topics.SUBSCRIPTION_CREATE,
    topics.SUBSCRIPTION_ACTIVATE,
    topics.SUBSCRIPTION_DEACTIVATE,
    topics.SUBSCRIPTION_CANCEL,
    topics.LAST_RUN_FAILED,
    topics.LAST_RUN_SUCCEEDED,
    topics.SUBSCRIPTION_PENDING,
    topics.SUBSCRIPTION_RENEWAL,
)
START = datetime(2026, 3, 1, 8, tzinfo=UTC)
DAY = 86400


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


def placed_shops(sessions, gateways, count: int, **shop):
    """``count`` shops whose source orders are placed (by ``placing.place_order``)."""
    with sessions.begin() as s:
        shops = [make_shop(s, **shop) for _ in range(count)]
    for made in shops:
        assert placing.place_order(sessions, made.source.id, Mode.TEST, gateways=gateways) == []
    return shops


def targets_of(sessions, copy_ids: list[str]) -> dict[str, str]:
    with sessions.begin() as s:
        rows = s.execute(
            select(OrderCopy.id, OrderCopy.target_order_id).where(OrderCopy.id.in_(copy_ids))
        ).all()
    return {copy_id: target_id for copy_id, target_id in rows}


def order_status(sessions, order_id: str) -> OrderStatus:
    with sessions.begin() as s:
        return s.get_one(Order, order_id).status


def listening(sessions, *names: str) -> dict[str, str]:
    """A webhook per topic, by topic."""
    return {name: listen(sessions, name) for name in names}


# --- orders: the copy pipeline ---------------------------------------------------------


@pytest.mark.parametrize("place", [True, False])
def test_a_chunk_owes_one_place_per_target_and_one_cancel_per_source(sessions, gateways, place):
    shops = placed_shops(sessions, gateways, 20)
    hooks = listening(sessions, PLACE, CANCEL)
    listen(sessions, PLACE, mode=Mode.LIVE)
    ids = [
        create_copy(sessions, shop.source.id, place_target_order=place, cancel_source_order=True).id
        for shop in shops
    ]

    ran = execute(sessions, ids, gateways=gateways, clock=FixedClock())

    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
    target = targets_of(sessions, ids)
    placed = {(hooks[PLACE], PLACE, target[i]): 1 for i in ids} if place else {}
    assert owed(sessions) == Counter(
        {**placed, **{(hooks[CANCEL], CANCEL, shop.source.id): 1 for shop in shops}}
    )
    assert {order_status(sessions, target[i]) for i in ids} == {
        OrderStatus.PLACED if place else OrderStatus.PENDING
    }


def test_a_free_target_placed_with_paid_ones_owes_its_place_event(sessions, gateways):
    """A target free of charge is placed when its stock is held (``_reserve_one``), off the
    common path; the paid ones after their payment (``_place_all``)."""
    hooks = listening(sessions, PLACE, CANCEL)
    with sessions.begin() as s:
        free = make_shop(s, price=0)
        paid = [make_shop(s) for _ in range(2)]
    ids = [
        create_copy(sessions, shop.source.id, place_target_order=True).id for shop in (free, *paid)
    ]

    ran = execute(sessions, ids, gateways=gateways, clock=FixedClock())

    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
    target = targets_of(sessions, ids)
    with sessions.begin() as s:
        free_target = s.get_one(Order, target[ids[0]])
        assert (free_target.status, free_target.total_amount_cents) == (OrderStatus.PLACED, 0)
    assert owed(sessions) == Counter({(hooks[PLACE], PLACE, target[i]): 1 for i in ids})


def test_a_declined_payment_owes_no_place_and_a_target_placed_by_hand_owes_one_in_all(
    sessions, gateways, clock
):
    hooks = listening(sessions, PLACE, CANCEL)
    with sessions.begin() as s:
        shop = make_shop(s, token="tok_declined")
    copy = create_copy(sessions, shop.source.id, place_target_order=True)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.FAILED
    assert owed(sessions) == Counter()  # declined: the target stays unplaced

    with sessions.begin() as s:
        target_id = s.get_one(OrderCopy, copy.id).target_order_id
        target = s.get_one(Order, target_id)
        target.payment_source_token = "tok_visa"
        s.get_one(
            CustomerPaymentSource, target.customer_payment_source_id
        ).payment_source_token = "tok_visa"
    # A person fixes the card on the target and places it; then the copy is retried.
    assert placing.place_order(sessions, target_id, Mode.TEST, gateways=gateways) == []
    assert owed(sessions) == Counter({(hooks[PLACE], PLACE, target_id): 1})
    with unit_of_work(sessions, Published()) as s:
        lifecycle.retry(s, copy.id, Mode.TEST, by="test", now=clock.now)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    with sessions.begin() as s:
        assert s.get_one(OrderCopy, copy.id).target_order_id == target_id
    assert owed(sessions) == Counter({(hooks[PLACE], PLACE, target_id): 1})


@pytest.mark.parametrize("failpoint", ["after_authorize", "after_place", "after_cancel"])
def test_a_run_rescued_after_a_crash_owes_each_order_event_once(
    sessions, gateways, clock, failpoint
):
    [shop] = placed_shops(sessions, gateways, 1)
    hooks = listening(sessions, PLACE, CANCEL)
    copy = create_copy(sessions, shop.source.id, place_target_order=True, cancel_source_order=True)
    with failpoints.enabled(failpoint):
        assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.CRASHED
    clock.advance(60)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED

    [target_id] = targets_of(sessions, [copy.id]).values()
    assert owed(sessions) == Counter(
        {(hooks[PLACE], PLACE, target_id): 1, (hooks[CANCEL], CANCEL, shop.source.id): 1}
    )


# --- orders: placing and cancelling on request -----------------------------------------


def test_placing_and_cancelling_an_order_owe_their_events_and_a_refusal_owes_none(
    sessions, gateways
):
    hooks = listening(sessions, PLACE, CANCEL)
    with sessions.begin() as s:
        shop = make_shop(s)
        declined = make_shop(s, token="tok_declined")

    assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    [refused] = placing.place_order(sessions, declined.source.id, Mode.TEST, gateways=gateways)
    assert refused.startswith("payment declined")
    assert owed(sessions) == Counter({(hooks[PLACE], PLACE, shop.source.id): 1})

    assert placing.cancel_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    # Pending (never placed): not cancellable, nothing owed.
    assert placing.cancel_order(sessions, declined.source.id, Mode.TEST, gateways=gateways)
    # Cancelled already: neither placed nor cancelled again.
    assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways)
    assert placing.cancel_order(sessions, shop.source.id, Mode.TEST, gateways=gateways)

    assert owed(sessions) == Counter(
        {(hooks[PLACE], PLACE, shop.source.id): 1, (hooks[CANCEL], CANCEL, shop.source.id): 1}
    )


# --- subscriptions: the moves the API and the CLI make ---------------------------------


def test_each_subscription_move_owes_its_event(sessions, gateways, clock):
    hooks = listening(sessions, *SUBSCRIPTION_TOPICS)
    [shop] = placed_shops(sessions, gateways, 1)
    expected: Counter[tuple[str, str, str]] = Counter()

    with sessions.begin() as s:
        subscription_id = subscription_states.create(
            s,
            s.get_one(Order, shop.source.id),
            frequency="monthly",
            now=clock.now,
            activate_by_source_order=False,
        ).id
    expected[hooks[topics.SUBSCRIPTION_CREATE], topics.SUBSCRIPTION_CREATE, subscription_id] += 1
    assert owed(sessions) == expected

    for move, topic in (
        (subscription_states.activate, topics.SUBSCRIPTION_ACTIVATE),
        (subscription_states.deactivate, topics.SUBSCRIPTION_DEACTIVATE),
        (subscription_states.activate, topics.SUBSCRIPTION_ACTIVATE),
        (subscription_states.cancel, topics.SUBSCRIPTION_CANCEL),
    ):
        with sessions.begin() as s:
            move(s, s.get_one(OrderSubscription, subscription_id, with_for_update=True), clock.now)
        expected[hooks[topic], topic, subscription_id] += 1
        assert owed(sessions) == expected

    with sessions.begin() as s:
        assert s.get_one(OrderSubscription, subscription_id).status == SubscriptionStatus.CANCELLED
    assert sorted(expected.values()) == [1, 1, 1, 2]


# --- subscriptions: a renewal's outcome, the tick --------------------------------------


def renew(sessions, now: datetime) -> list[str]:
    with unit_of_work(sessions, Published()) as s:
        return renewals.tick(s, now, batch_size=10).copies


def test_renewals_completed_in_one_chunk_owe_last_run_succeeded_each(sessions, gateways):
    hooks = listening(sessions, *SUBSCRIPTION_TOPICS)
    with sessions.begin() as s:
        subscription_ids = [
            make_subscription(s, make_shop(s).source, starts_at=START).id for _ in range(3)
        ]
    copy_ids = renew(sessions, START)
    assert len(copy_ids) == 3

    ran = execute(sessions, copy_ids, gateways=gateways, clock=FixedClock(START))

    assert ran.outcome == dict.fromkeys(copy_ids, Outcome.COMPLETED)
    succeeded = topics.LAST_RUN_SUCCEEDED
    assert owed(sessions) == Counter(
        {(hooks[succeeded], succeeded, i): 1 for i in subscription_ids}
    )


def declined_subscription(sessions, gateways, policy: dict) -> str:
    """An active subscription of a placed source, charging a card declined softly (a retry
    may pass), due at START."""
    [shop] = placed_shops(sessions, gateways, 1)
    with sessions.begin() as s:
        declined = make_wallet_entry(s, shop.customer, token="tok_insufficient_funds")
        return make_subscription(
            s,
            s.get_one(Order, shop.source.id),
            starts_at=START,
            wallet_entry=declined,
            failure_policy=policy,
        ).id


@pytest.mark.parametrize(
    ("action", "status", "moved"),
    [
        ("deactivate", SubscriptionStatus.INACTIVE, topics.SUBSCRIPTION_DEACTIVATE),
        ("cancel", SubscriptionStatus.CANCELLED, topics.SUBSCRIPTION_CANCEL),
        ("keep_active", SubscriptionStatus.ACTIVE, None),
    ],
)
def test_a_failed_renewal_owes_last_run_failed_and_its_final_action_once_retries_are_used_up(
    sessions, gateways, action, status, moved
):
    subscription_id = declined_subscription(
        sessions, gateways, {"retry_after_seconds": [DAY], "final_action": action}
    )
    hooks = listening(sessions, *SUBSCRIPTION_TOPICS)
    [copy_id] = renew(sessions, START)
    clock = FixedClock(START)
    failed = (hooks[topics.LAST_RUN_FAILED], topics.LAST_RUN_FAILED, subscription_id)

    # A retry is left: the failure is told, the subscription waits for it active.
    assert execute_one(sessions, copy_id, gateways=gateways, clock=clock) == Outcome.FAILED
    assert owed(sessions) == Counter({failed: 1})
    with sessions.begin() as s:
        copy = s.get_one(OrderCopy, copy_id)
        waiting = s.get_one(OrderSubscription, subscription_id)
        assert waiting.status == SubscriptionStatus.ACTIVE
        assert waiting.next_attempt_at == copy.next_attempt_at
    assert copy.status == CopyStatus.PENDING
    clock.now = copy.next_attempt_at

    # None is left: the final action moves it (and says so, unless it stays active).
    assert execute_one(sessions, copy_id, gateways=gateways, clock=clock) == Outcome.FAILED
    expected = Counter({failed: 2})
    if moved is not None:
        expected[hooks[moved], moved, subscription_id] = 1
    assert owed(sessions) == expected
    with sessions.begin() as s:
        assert s.get_one(OrderSubscription, subscription_id).status == status


def test_the_tick_deactivating_an_invalid_schedule_owes_deactivate(sessions):
    renewed = topics.of_copy(topics.CREATE, "recurring_order_copies")
    hooks = listening(sessions, *SUBSCRIPTION_TOPICS, topics.CREATE, renewed)
    with sessions.begin() as s:
        # Stored before check_frequency got stricter: more often than hourly.
        invalid = make_subscription(
            s, make_shop(s).source, frequency="*/5 * * * *", starts_at=START
        ).id
        valid = make_subscription(s, make_shop(s).source, starts_at=START).id

    [copy_id] = renew(sessions, START + timedelta(minutes=1))

    deactivated = topics.SUBSCRIPTION_DEACTIVATE
    assert owed(sessions) == Counter(
        {
            (hooks[deactivated], deactivated, invalid): 1,
            (hooks[renewed], renewed, copy_id): 1,  # a renewal: not order_copies.create
        }
    )
    with sessions.begin() as s:
        assert s.get_one(OrderSubscription, invalid).status == SubscriptionStatus.INACTIVE
        assert s.get_one(OrderCopy, copy_id).order_subscription_id == valid


def test_a_subscription_made_from_a_placed_order_owes_create_then_activate(sessions, gateways):
    hooks = listening(sessions, *SUBSCRIPTION_TOPICS)
    [shop] = placed_shops(sessions, gateways, 1)

    with sessions.begin() as s:
        subscription_id = subscription_states.create(
            s, s.get_one(Order, shop.source.id), frequency="monthly", now=START
        ).id

    assert owed(sessions) == Counter(
        (hooks[topic], topic, subscription_id)
        for topic in (topics.SUBSCRIPTION_CREATE, topics.SUBSCRIPTION_ACTIVATE)
    )


def test_a_due_subscription_without_a_usable_card_owes_pending_and_no_renewal(sessions):
    renewed = topics.of_copy(topics.CREATE, "recurring_order_copies")
    hooks = listening(sessions, *SUBSCRIPTION_TOPICS, renewed)
    with sessions.begin() as s:
        shop = make_shop(s)
        expired = make_wallet_entry(s, shop.customer, expires_on=(START - timedelta(days=1)).date())
        parked = make_subscription(s, shop.source, starts_at=START, wallet_entry=expired).id

    assert renew(sessions, START) == []

    pending = topics.SUBSCRIPTION_PENDING
    assert owed(sessions) == Counter({(hooks[pending], pending, parked): 1})


def test_the_renewal_reminder_owes_its_event_once(sessions):
    hooks = listening(sessions, *SUBSCRIPTION_TOPICS)
    with sessions.begin() as s:
        sub = make_subscription(s, make_shop(s).source, starts_at=START)
        sub.renewal_alert_at = START - timedelta(hours=1)
        subscription_id = sub.id

    for minutes in (-60, -59, -30):
        renew(sessions, START + timedelta(minutes=minutes))

    alert = topics.SUBSCRIPTION_RENEWAL
    assert owed(sessions) == Counter({(hooks[alert], alert, subscription_id): 1})


# --- SQLite ----------------------------------------------------------------------------


def test_on_sqlite_the_pipeline_owes_the_same_order_events(sqlite):
    sessions, gateways = sqlite
    hooks = listening(sessions, PLACE, CANCEL)
    with sessions.begin() as s:
        shops = [make_shop(s) for _ in range(3)] + [make_shop(s, price=0)]
    for shop in shops:
        assert placing.place_order(sessions, shop.source.id, Mode.TEST, gateways=gateways) == []
    ids = [
        create_copy(sessions, shop.source.id, place_target_order=True, cancel_source_order=True).id
        for shop in shops
    ]

    ran = execute(sessions, ids, gateways=gateways, clock=FixedClock())

    assert ran.outcome == dict.fromkeys(ids, Outcome.COMPLETED)
    target = targets_of(sessions, ids)
    assert owed(sessions) == Counter(
        {
            **{(hooks[PLACE], PLACE, shop.source.id): 1 for shop in shops},
            **{(hooks[PLACE], PLACE, target[i]): 1 for i in ids},
            **{(hooks[CANCEL], CANCEL, shop.source.id): 1 for shop in shops},
        }
    )
