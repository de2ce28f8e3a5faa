"""Beat ticks renewals and a real worker executes them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from copying.orders import placing
from models import (
    CopyStatus,
    Mode,
    Order,
    OrderCopy,
    OrderSubscription,
    SubscriptionStatus,
    utcnow,
)
from tests.factories import make_shop, make_subscription
from tests.invariants import violations
from tests.worker.processes import WorkerProcess, flush_broker, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.xdist_group("worker-processes")
def test_beat_renews_a_due_subscription_and_the_worker_places_it(committed, gateways, tmp_path):
    flush_broker()
    with committed.begin() as s:
        shop = make_shop(s, stock=10)
    assert placing.place_order(committed, shop.source.id, Mode.TEST, gateways=gateways) == []
    with committed.begin() as s:
        sub_id = make_subscription(
            s,
            s.get_one(Order, shop.source.id),
            frequency="daily",
            starts_at=utcnow() - timedelta(minutes=5),
        ).id

    def renewed() -> bool:
        with committed.begin() as s:
            sub = s.get_one(OrderSubscription, sub_id)
            return sub.occurrencies == 1 and sub.status == SubscriptionStatus.ACTIVE

    worker = WorkerProcess(tmp_path, "renewer", beat=True, renewals_interval_seconds=1)
    try:
        wait_for(renewed, 60, "the renewal to complete")
    finally:
        worker.stop()
    with committed.begin() as s:
        [copy] = s.scalars(select(OrderCopy).where(OrderCopy.order_subscription_id == sub_id))
        assert copy.status == CopyStatus.COMPLETED
        assert copy.place_target_order is True
        assert violations(s, [copy.id], {shop.sku.code: 10}) == []
