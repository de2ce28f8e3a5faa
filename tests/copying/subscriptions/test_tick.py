"""The renewal tick: one copy per subscription and period, whatever happens to the tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from copying.subscriptions import renewals
from models import CopyStatus, OrderCopy, OrderSubscription, SubscriptionStatus
from tests.factories import make_shop, make_subscription
from tests.fixtures import Published

JAN_31 = datetime(2026, 1, 31, 9, tzinfo=UTC)


def tick(sessions, now, published=None, batch_size=100):
    from copying.copies.dispatch import unit_of_work

    with unit_of_work(sessions, published if published is not None else Published()) as s:
        return renewals.tick(s, now, batch_size=batch_size)


def copies_of(sessions, subscription_id):
    with sessions.begin() as s:
        return s.scalars(
            select(OrderCopy)
            .where(OrderCopy.order_subscription_id == subscription_id)
            .order_by(OrderCopy.period_key)
        ).all()


def test_a_due_subscription_gets_one_pending_copy_and_its_next_run(sessions):
    with sessions.begin() as s:
        shop = make_shop(s)
        sub_id = make_subscription(s, shop.source, starts_at=JAN_31).id
    published = Published()
    result = tick(sessions, JAN_31 + timedelta(minutes=1), published)
    [copy] = copies_of(sessions, sub_id)
    assert result.copies == [copy.id] == published
    assert copy.status == CopyStatus.PENDING
    assert copy.period_key == "2026-01-31T09:00:00Z"
    assert copy.place_target_order is True
    assert copy.reuse_wallet is True
    assert copy.customer_payment_source_id == shop.entry.id
    assert copy.source_order_id == shop.source.id
    with sessions.begin() as s:
        sub = s.get_one(OrderSubscription, sub_id)
        assert sub.status == SubscriptionStatus.RUNNING
        assert sub.next_run_at == datetime(2026, 2, 28, 9, tzinfo=UTC)


def test_a_second_tick_in_the_same_period_renews_nothing(sessions):
    with sessions.begin() as s:
        sub_id = make_subscription(s, make_shop(s).source, starts_at=JAN_31).id
    tick(sessions, JAN_31)
    assert tick(sessions, JAN_31 + timedelta(hours=1)).copies == []
    assert len(copies_of(sessions, sub_id)) == 1


def test_a_tick_that_lost_its_advance_cannot_renew_the_period_twice(sessions):
    """As if a second tick read the subscription before the first committed its advance."""
    with sessions.begin() as s:
        sub_id = make_subscription(s, make_shop(s).source, starts_at=JAN_31).id
    tick(sessions, JAN_31)
    with sessions.begin() as s:
        s.get_one(OrderSubscription, sub_id).next_run_at = JAN_31
    assert tick(sessions, JAN_31 + timedelta(seconds=5)).copies == []  # ON CONFLICT DO NOTHING
    assert len(copies_of(sessions, sub_id)) == 1


def test_a_tick_rolled_back_midway_renews_nothing_and_the_retry_misses_nothing(sessions):
    with sessions.begin() as s:
        shop = make_shop(s)
        ids = [make_subscription(s, shop.source, starts_at=JAN_31).id for _ in range(5)]
    try:
        with sessions.begin() as s:
            assert len(renewals.tick(s, JAN_31, batch_size=100).copies) == 5
            raise RuntimeError("the tick's process died before commit")
    except RuntimeError:
        pass
    assert all(copies_of(sessions, i) == [] for i in ids)
    assert len(tick(sessions, JAN_31).copies) == 5
    assert [len(copies_of(sessions, i)) for i in ids] == [1] * 5


def test_batches_cover_every_due_subscription_once(sessions):
    with sessions.begin() as s:
        shop = make_shop(s)
        ids = [make_subscription(s, shop.source, starts_at=JAN_31).id for _ in range(7)]
    results = [tick(sessions, JAN_31, batch_size=3) for _ in range(4)]
    assert [r.subscriptions for r in results] == [3, 3, 1, 0]
    assert [len(copies_of(sessions, i)) for i in ids] == [1] * 7


def test_after_three_missed_periods_only_the_latest_is_renewed_by_default(sessions):
    with sessions.begin() as s:
        sub_id = make_subscription(s, make_shop(s).source, starts_at=JAN_31).id
    tick(sessions, datetime(2026, 4, 30, 12, tzinfo=UTC))  # Jan 31, Feb 28, Mar 31, Apr 30 due
    assert [c.period_key for c in copies_of(sessions, sub_id)] == ["2026-04-30T09:00:00Z"]
    with sessions.begin() as s:
        assert s.get_one(OrderSubscription, sub_id).next_run_at == datetime(
            2026, 5, 31, 9, tzinfo=UTC
        )


def test_catch_up_renews_each_missed_period_once(sessions):
    with sessions.begin() as s:
        shop = make_shop(s)
        sub_id = make_subscription(
            s,
            shop.source,
            starts_at=JAN_31,
            next_run_at=datetime(2026, 2, 28, 9, tzinfo=UTC),
            catch_up=True,
        ).id
    now = datetime(2026, 4, 30, 12, tzinfo=UTC)
    tick(sessions, now)
    tick(sessions, now)
    assert [c.period_key for c in copies_of(sessions, sub_id)] == [
        "2026-02-28T09:00:00Z",
        "2026-03-31T09:00:00Z",
        "2026-04-30T09:00:00Z",
    ]


def test_expired_subscriptions_stop_renewing(sessions):
    with sessions.begin() as s:
        sub_id = make_subscription(
            s, make_shop(s).source, starts_at=JAN_31, expires_at=datetime(2026, 3, 1, tzinfo=UTC)
        ).id
    tick(sessions, datetime(2026, 2, 28, 10, tzinfo=UTC), batch_size=10)  # Feb 28 renews
    with sessions.begin() as s:
        sub = s.get_one(OrderSubscription, sub_id)
        assert sub.next_run_at is None  # Mar 31 is past expires_at
    tick(sessions, datetime(2026, 6, 1, tzinfo=UTC))
    assert [c.period_key for c in copies_of(sessions, sub_id)] == ["2026-02-28T09:00:00Z"]


def test_inactive_draft_and_cancelled_subscriptions_do_not_renew(sessions):
    with sessions.begin() as s:
        shop = make_shop(s)
        for status in (
            SubscriptionStatus.INACTIVE,
            SubscriptionStatus.DRAFT,
            SubscriptionStatus.CANCELLED,
        ):
            make_subscription(s, shop.source, starts_at=JAN_31, status=status)
    assert tick(sessions, JAN_31 + timedelta(days=90)).copies == []
    with sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(OrderCopy)) == 0


JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)


def move_next_run(sessions, subscription_id, to, *, at):
    """As PATCH next_run_at does at ``at`` (its ``updated_at``)."""
    with sessions.begin() as s:
        subscription = s.get_one(OrderSubscription, subscription_id)
        subscription.next_run_at = to
        subscription.updated_at = at


@pytest.mark.parametrize(
    ("planned", "moved_to"),
    [
        # the 01-10 00:00 run an hour earlier (less than a period)
        (datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 1, 9, 23, tzinfo=UTC)),
        # a run planned for 01-12 (set ahead) moved back past two scheduled runs
        (datetime(2026, 1, 12, tzinfo=UTC), datetime(2026, 1, 9, 23, tzinfo=UTC)),
    ],
)
def test_a_run_moved_earlier_renews_its_period_once(sessions, planned, moved_to):
    """Daily at 00:00: a tick at the moved time and one at the scheduled time renew once."""
    with sessions.begin() as s:
        sub_id = make_subscription(
            s, make_shop(s).source, frequency="daily", starts_at=JAN_1, next_run_at=planned
        ).id
    move_next_run(sessions, sub_id, moved_to, at=datetime(2026, 1, 9, 12, tzinfo=UTC))

    assert len(tick(sessions, moved_to).copies) == 1
    assert tick(sessions, datetime(2026, 1, 10, 0, 1, tzinfo=UTC)).copies == []

    assert [c.period_key for c in copies_of(sessions, sub_id)] == ["2026-01-10T00:00:00Z"]
    with sessions.begin() as s:
        assert s.get_one(OrderSubscription, sub_id).next_run_at == datetime(2026, 1, 11, tzinfo=UTC)


def test_a_run_moved_later_renews_the_period_it_was_planned_for(sessions):
    with sessions.begin() as s:
        sub_id = make_subscription(
            s, make_shop(s).source, frequency="daily", starts_at=JAN_1, next_run_at=JAN_1
        ).id
    tick(sessions, JAN_1)  # renews 01-01; next 01-02 00:00
    moved_to = datetime(2026, 1, 2, 6, tzinfo=UTC)
    move_next_run(sessions, sub_id, moved_to, at=datetime(2026, 1, 1, 12, tzinfo=UTC))

    assert tick(sessions, datetime(2026, 1, 2, 0, 1, tzinfo=UTC)).copies == []
    assert len(tick(sessions, moved_to).copies) == 1

    assert [c.period_key for c in copies_of(sessions, sub_id)] == [
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
    ]
    with sessions.begin() as s:
        assert s.get_one(OrderSubscription, sub_id).next_run_at == datetime(2026, 1, 3, tzinfo=UTC)


def test_due_active_subscriptions_go_first_and_due_running_ones_follow(sessions):
    """The documented order: a full batch of active ones leaves running ones to the next."""
    with sessions.begin() as s:
        shop = make_shop(s)
        running = make_subscription(
            s, shop.source, starts_at=JAN_31, status=SubscriptionStatus.RUNNING
        ).id
        active = [
            make_subscription(s, shop.source, starts_at=JAN_31 + timedelta(hours=1)).id
            for _ in range(2)
        ]
    now = JAN_31 + timedelta(hours=2)

    assert tick(sessions, now, batch_size=2).subscriptions == 2
    assert [len(copies_of(sessions, i)) for i in [running, *active]] == [0, 1, 1]
    assert tick(sessions, now, batch_size=2).subscriptions == 1
    assert len(copies_of(sessions, running)) == 1
