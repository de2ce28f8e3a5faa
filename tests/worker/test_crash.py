"""Crash safety: a worker dies after each checkpoint; the copy still ends right, once.

The workers are real ``celery -A worker worker`` processes on Redis. A
failpoint makes the worker's process exit on the spot (``os._exit``, as under
SIGKILL) or hang so that the test can SIGKILL it; a fresh worker with beat
(the sweeper) must then finish every copy with one target order, one
authorization and one cancellation.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from sqlalchemy import select, update

from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.copies.options import CopyOptions
from copying.orders import placing
from copying.testing import failpoints
from models import CopyStatus, CopyStep, Mode, OrderCopy, TestGatewayCharge, utcnow
from tests.factories import Line, make_customer, make_order, make_sku, make_wallet_entry
from tests.fixtures import Published
from tests.invariants import violations
from tests.worker.processes import WorkerProcess, flush_broker, wait_for
from worker.publisher import publish

pytestmark = pytest.mark.slow

FAST = {"lease_seconds": 5, "sweep_interval_seconds": 1, "redispatch_after_seconds": 2}
STOCK = 100


def make_copies(sessions, gateways, count, announce=publish):
    """``count`` copies that place the target and cancel a placed source, each its own source."""
    with sessions.begin() as s:
        sku = make_sku(s, "CRASH-TEE", stock=STOCK)
        customer = make_customer(s)
        entry = make_wallet_entry(s, customer)
        sources = [
            make_order(s, [Line(sku, 2)], customer=customer, wallet_entry=entry)
            for _ in range(count)
        ]
    for source in sources:
        assert placing.place_order(sessions, source.id, Mode.TEST, gateways=gateways) == []
    with unit_of_work(sessions, announce) as s:
        return [
            lifecycle.create(
                s,
                mode=Mode.TEST,
                source_order_id=source.id,
                options=CopyOptions(place_target_order=True, cancel_source_order=True),
            ).id
            for source in sources
        ]


def statuses(sessions, ids):
    with sessions.begin() as s:
        return dict(
            s.execute(select(OrderCopy.id, OrderCopy.status).where(OrderCopy.id.in_(ids))).all()
        )


def all_finished(sessions, ids):
    return lambda: (
        set(statuses(sessions, ids).values()) <= {CopyStatus.COMPLETED, CopyStatus.FAILED}
    )


def kill_at_each(sessions, tmp_path, ids, names, chunk_size, announce=None):
    """One faulty worker per failpoint in ``names``: each claims the next ``chunk_size``
    copies (its message's and the oldest pending) and dies there; ``announce(n)`` sends the
    n-th worker's message first. Their leases are long, so that no faulty worker takes over
    a dead one's copies, and expired at the end."""
    for n, name in enumerate(names):
        if announce is not None:
            announce(n)
        faulty = WorkerProcess(
            tmp_path,
            f"dies-{name}-{chunk_size}",
            failpoints=f"{name}=exit",
            chunk_size=chunk_size,
            **{**FAST, "lease_seconds": 300},
        )
        try:
            assert faulty.wait(timeout=20) == 137, (faulty.log(), statuses(sessions, ids))
        finally:
            faulty.stop()
    stalled = statuses(sessions, ids)
    assert set(stalled.values()) == {CopyStatus.IN_PROGRESS}, stalled
    with sessions.begin() as s:
        s.execute(update(OrderCopy).where(OrderCopy.id.in_(ids)).values(lease_expires_at=utcnow()))


def rescue(sessions, tmp_path, ids):
    """A fresh worker with beat (the sweeper) ends every copy: completed, the world whole."""
    rescuer = WorkerProcess(tmp_path, "rescuer", beat=True, **FAST)
    try:
        wait_for(all_finished(sessions, ids), 90, "the sweeper to rescue every copy")
    finally:
        rescuer.stop()
    assert set(statuses(sessions, ids).values()) == {CopyStatus.COMPLETED}, rescuer.log()
    with sessions.begin() as s:
        assert violations(s, ids, {"CRASH-TEE": STOCK}) == []


@pytest.mark.xdist_group("worker-processes")
def test_worker_killed_after_each_checkpoint(committed, gateways, tmp_path):
    flush_broker()
    ids = make_copies(committed, gateways, len(failpoints.NAMES))
    kill_at_each(committed, tmp_path, ids, failpoints.NAMES, chunk_size=1)

    rescue(committed, tmp_path, ids)
    with committed.begin() as s:
        steps = s.scalars(select(OrderCopy.attempt).where(OrderCopy.id.in_(ids))).all()
        assert all(attempt >= 2 for attempt in steps)  # each was resumed by a new claim


CHUNK_POINTS = ("after_claim", "after_build", "after_authorize", "after_place")


@pytest.mark.xdist_group("worker-processes")
def test_a_chunk_killed_at_each_stage_is_rescued(committed, gateways, tmp_path):
    """Three copies run together die at each of the chunk's stages: each dead chunk leaves
    its copies where a copy alone would be, and the sweeper ends them all right, once."""
    flush_broker()
    ids = make_copies(committed, gateways, 3 * len(CHUNK_POINTS), announce=Published())
    # Each worker's message is the next group's first copy: it takes the two after it.
    lead = lambda n: publish([ids[3 * n]])  # noqa: E731
    kill_at_each(committed, tmp_path, ids, CHUNK_POINTS, chunk_size=3, announce=lead)
    with committed.begin() as s:
        steps = Counter(s.scalars(select(OrderCopy.step).where(OrderCopy.id.in_(ids))))
    # after_claim: none; after_build and after_authorize: stock reserved; after_place: placed.
    assert steps == {None: 3, CopyStep.STOCK_RESERVED: 6, CopyStep.TARGET_PLACED: 3}, steps

    rescue(committed, tmp_path, ids)


@pytest.mark.xdist_group("worker-processes")
def test_sigkill_while_the_payment_is_held_charges_once(committed, gateways, tmp_path):
    flush_broker()
    [copy_id] = make_copies(committed, gateways, 1)
    key = f"order_copy:{copy_id}:place"

    def gateway_authorized():
        with committed.begin() as s:
            return (
                s.scalar(
                    select(TestGatewayCharge.outcome).where(
                        TestGatewayCharge.idempotency_key == key
                    )
                )
                == "authorized"
            )

    hanging = WorkerProcess(
        tmp_path, "hangs", pool="prefork", failpoints="after_authorize=hang", **FAST
    )
    try:
        wait_for(gateway_authorized, 60, "the gateway to authorize")
        hanging.kill(signal.SIGKILL)
        assert hanging.wait(timeout=10) == -signal.SIGKILL
    finally:
        hanging.stop()
    assert statuses(committed, [copy_id]) == {copy_id: CopyStatus.IN_PROGRESS}

    rescuer = WorkerProcess(tmp_path, "rescuer", beat=True, **FAST)
    try:
        wait_for(all_finished(committed, [copy_id]), 60, "the copy to be rescued")
    finally:
        rescuer.stop()
    assert statuses(committed, [copy_id]) == {copy_id: CopyStatus.COMPLETED}
    with committed.begin() as s:
        assert violations(s, [copy_id], {"CRASH-TEE": STOCK}) == []
