"""The tick's portable path (the embedded default, SQLite): the same rows as on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from copying.copies.dispatch import unit_of_work
from copying.subscriptions import renewals
from models import CopyStatus, OrderCopy, OrderCopyEvent, OrderSubscription, SubscriptionStatus
from tests.factories import make_shop, make_subscription
from tests.fixtures import Published

JAN_31 = datetime(2026, 1, 31, 9, tzinfo=UTC)


def test_the_tick_renews_each_period_once_on_sqlite(sqlite):
    sessions, _ = sqlite
    with sessions.begin() as s:
        shop = make_shop(s)
        monthly = make_subscription(s, shop.source, starts_at=JAN_31).id
        catching_up = make_subscription(
            s, shop.source, frequency="daily", starts_at=JAN_31, catch_up=True
        ).id
    now = JAN_31 + timedelta(days=2, hours=1)
    published = Published()

    for _ in range(2):  # a second tick finds nothing due
        with unit_of_work(sessions, published) as s:
            renewals.tick(s, now, batch_size=10)

    with sessions.begin() as s:
        copies = s.execute(
            select(
                OrderCopy.order_subscription_id, OrderCopy.period_key, OrderCopy.status
            ).order_by(OrderCopy.order_subscription_id, OrderCopy.period_key)
        ).all()
        assert sorted(copies) == sorted(
            [
                (monthly, "2026-01-31T09:00:00Z", CopyStatus.PENDING),
                (catching_up, "2026-01-31T09:00:00Z", CopyStatus.PENDING),
                (catching_up, "2026-02-01T09:00:00Z", CopyStatus.PENDING),
                (catching_up, "2026-02-02T09:00:00Z", CopyStatus.PENDING),
            ]
        )
        ids = set(s.scalars(select(OrderCopy.id)))
        assert set(published) == ids
        assert set(s.scalars(select(OrderCopyEvent.order_copy_id))) == ids
        advanced = {
            sub.id: (sub.status, sub.next_run_at) for sub in s.scalars(select(OrderSubscription))
        }
    assert advanced[monthly] == (SubscriptionStatus.RUNNING, datetime(2026, 2, 28, 9, tzinfo=UTC))
    assert advanced[catching_up] == (
        SubscriptionStatus.RUNNING,
        datetime(2026, 2, 3, 9, tzinfo=UTC),
    )


def test_a_run_moved_earlier_renews_its_period_once_on_sqlite(sqlite):
    sessions, _ = sqlite
    with sessions.begin() as s:
        sub_id = make_subscription(
            s,
            make_shop(s).source,
            frequency="daily",
            starts_at=datetime(2026, 1, 1, tzinfo=UTC),
            next_run_at=datetime(2026, 1, 9, 23, tzinfo=UTC),  # the 01-10 00:00 run, moved
        ).id
    for now in (datetime(2026, 1, 9, 23, tzinfo=UTC), datetime(2026, 1, 10, 0, 1, tzinfo=UTC)):
        with unit_of_work(sessions, Published()) as s:
            renewals.tick(s, now, batch_size=10)

    with sessions.begin() as s:
        assert s.scalars(select(OrderCopy.period_key)).all() == ["2026-01-10T00:00:00Z"]
        assert s.get_one(OrderSubscription, sub_id).next_run_at == datetime(2026, 1, 11, tzinfo=UTC)
