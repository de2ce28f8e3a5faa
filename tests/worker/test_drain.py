"""A real Celery worker (in a thread, on Redis) drains copies created by the engine."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from sqlalchemy import func, select

import worker
from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.copies.options import CopyOptions
from copying.orders import placing
from models import CopyStatus, Mode, Order, OrderCopy
from tests.factories import Line, make_customer, make_order, make_sku, make_wallet_entry
from tests.worker.processes import flush_broker
from worker.publisher import publish

pytestmark = pytest.mark.slow


def wait_until_finished(sessions, ids, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sessions.begin() as s:
            open_ = s.scalar(
                select(func.count()).where(
                    OrderCopy.id.in_(ids),
                    OrderCopy.status.in_([CopyStatus.PENDING, CopyStatus.IN_PROGRESS]),
                )
            )
        if open_ == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"{open_} copies still open after {timeout}s")


@pytest.fixture
def celery_worker(committed):
    flush_broker()
    with start_worker(
        worker.app, pool="solo", perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"
    ) as w:
        yield w


def test_real_worker_drains_copies(committed, gateways, celery_worker):
    with committed.begin() as s:
        sku = make_sku(s, stock=100)
        gone = make_sku(s, stock=100, discontinued=True)
        customer = make_customer(s)
        entry = make_wallet_entry(s, customer)
        good = make_order(s, [Line(sku, 2)], customer=customer, wallet_entry=entry)
        bad = make_order(s, [Line(gone, 1)], customer=customer, wallet_entry=entry)
    assert placing.place_order(committed, good.id, Mode.TEST, gateways=gateways) == []
    with unit_of_work(committed, publish) as s:
        ok = [
            lifecycle.create(
                s,
                mode=Mode.TEST,
                source_order_id=good.id,
                options=CopyOptions(place_target_order=True),
            ).id
            for _ in range(5)
        ]
        failing = lifecycle.create(s, mode=Mode.TEST, source_order_id=bad.id).id
    wait_until_finished(committed, [*ok, failing])
    with committed.begin() as s:
        statuses = dict(s.execute(select(OrderCopy.id, OrderCopy.status)).all())
        assert {statuses[i] for i in ok} == {CopyStatus.COMPLETED}
        assert statuses[failing] == CopyStatus.FAILED
        targets = s.scalars(
            select(Order).where(
                Order.id.in_(select(OrderCopy.target_order_id).where(OrderCopy.id.in_(ok)))
            )
        ).all()
        assert len(targets) == 5
        assert {t.status for t in targets} == {"placed"}
