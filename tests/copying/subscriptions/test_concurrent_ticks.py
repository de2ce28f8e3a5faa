"""Two tick processes started at the same moment over 10,000 due subscriptions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from models import OrderCopy, OrderSubscription, SubscriptionStatus, new_public_id, utcnow
from tests.factories import make_shop
from tests.worker.processes import REPO, flush_broker

pytestmark = pytest.mark.slow

SUBSCRIPTIONS = 10_000


@pytest.mark.xdist_group("worker-processes")
def test_two_ticks_at_once_renew_each_subscription_exactly_once(committed):
    now = utcnow()
    with committed.begin() as s:
        shop = make_shop(s)
        s.execute(
            insert(OrderSubscription),
            [
                {
                    "id": new_public_id(),
                    "mode": shop.source.mode,
                    "source_order_id": shop.source.id,
                    "customer_id": shop.customer.id,
                    "customer_payment_source_id": shop.entry.id,
                    "frequency": "daily",
                    "status": SubscriptionStatus.ACTIVE,
                    "starts_at": now - timedelta(hours=1),
                    "next_run_at": now - timedelta(hours=1),
                    "metadata_": {},
                    "failure_policy": {},
                }
                for _ in range(SUBSCRIPTIONS)
            ],
        )
    flush_broker()
    start = time.time() + 3
    ticks = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.copying.subscriptions.concurrent_tick", str(start)],
            cwd=REPO,
            env=dict(os.environ, ORDERCOPY_LOG_LEVEL="WARNING"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [tick.communicate(timeout=240) for tick in ticks]
    finally:
        for tick in ticks:
            tick.kill()
        flush_broker()
    assert [tick.returncode for tick in ticks] == [0, 0], outputs
    taken = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(t["subscriptions"] for t in taken) == SUBSCRIPTIONS
    assert sum(t["copies"] for t in taken) == SUBSCRIPTIONS
    assert all(t["subscriptions"] > 0 for t in taken), taken  # both really took part
    with committed.begin() as s:
        per_period = s.execute(
            select(OrderCopy.order_subscription_id, OrderCopy.period_key, func.count()).group_by(
                OrderCopy.order_subscription_id, OrderCopy.period_key
            )
        ).all()
        assert len(per_period) == SUBSCRIPTIONS
        assert {count for _, _, count in per_period} == {1}
        assert (
            s.scalar(
                select(func.count())
                .select_from(OrderSubscription)
                .where(OrderSubscription.next_run_at <= now)
            )
            == 0
        )
