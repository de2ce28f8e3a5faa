"""Two runs of one copy at once, and a stalled run that wakes up after it lost its lease."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import func, select

from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.copies.options import CopyOptions
from copying.orders import placing
from copying.orders.gateways import GatewayAnswer, TestGateway
from copying.runs import Outcome, RunConfig
from models import CopyStatus, Mode, Order, OrderCopy, PaymentAuthorization, db, utcnow
from tests.factories import Line, make_customer, make_order, make_sku, make_wallet_entry
from tests.invariants import violations
from tests.runs import execute_one


def one_copy(sessions, gateways, published):
    with sessions.begin() as s:
        sku = make_sku(s, "RACE-TEE", stock=50)
        customer = make_customer(s)
        entry = make_wallet_entry(s, customer)
        source = make_order(s, [Line(sku, 3)], customer=customer, wallet_entry=entry)
    assert placing.place_order(sessions, source.id, Mode.TEST, gateways=gateways) == []
    with unit_of_work(sessions, published) as s:
        return lifecycle.create(
            s,
            mode=Mode.TEST,
            source_order_id=source.id,
            options=CopyOptions(place_target_order=True, cancel_source_order=True),
        ).id


def test_two_workers_given_the_same_copy_build_one_target(committed, gateways, published):
    copy_id = one_copy(committed, gateways, published)
    start = threading.Barrier(2)

    def run() -> Outcome:
        start.wait()
        return execute_one(committed, copy_id, gateways=gateways)

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda _: run(), range(2)))
    assert outcomes == sorted([Outcome.COMPLETED, Outcome.NOT_CLAIMED])
    with committed.begin() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 2  # source + one target
        assert violations(s, [copy_id], {"RACE-TEE": 50}) == []


class StallingGateway(TestGateway):
    """The real test gateway, whose first authorization stalls after the charge is made."""

    def __init__(self) -> None:
        super().__init__(db.engine)
        self.charged = threading.Event()
        self.wake = threading.Event()

    def authorize(self, **request) -> GatewayAnswer:  # type: ignore[no-untyped-def]
        answer = super().authorize(**request)
        if not self.charged.is_set():
            self.charged.set()
            assert self.wake.wait(30)
        return answer


def test_a_stalled_run_that_wakes_up_after_losing_its_lease_writes_nothing(committed, published):
    copy_id = one_copy(committed, {"test": TestGateway(db.engine)}, published)
    stalling = StallingGateway()
    config = RunConfig(lease=timedelta(seconds=30))
    with ThreadPoolExecutor(1) as pool:
        zombie = pool.submit(
            execute_one, committed, copy_id, gateways={"test": stalling}, config=config
        )
        assert stalling.charged.wait(30)
        # Past the zombie's lease, a new run claims the copy and finishes it.
        later = lambda: utcnow() + timedelta(seconds=31)  # noqa: E731
        rescued = execute_one(
            committed, copy_id, gateways={"test": stalling}, config=config, clock=later
        )
        stalling.wake.set()
        assert zombie.result(timeout=30) == Outcome.LEASE_LOST
    assert rescued == Outcome.COMPLETED
    with committed.begin() as s:
        copy = s.get_one(OrderCopy, copy_id)
        assert copy.status == CopyStatus.COMPLETED
        assert copy.attempt == 2
        assert (
            s.scalar(
                select(func.count())
                .select_from(PaymentAuthorization)
                .where(PaymentAuthorization.idempotency_key == f"order_copy:{copy_id}:place")
            )
            == 1
        )
        assert violations(s, [copy_id], {"RACE-TEE": 50}) == []
