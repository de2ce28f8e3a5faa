"""The sweeper: rings lost doorbells, rescues expired runs, fails runs that are used up."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event, select, update

from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.copies.sweeper import SweepResult, purge_idempotency_keys, sweep
from copying.runs import Outcome, RunConfig
from copying.testing import failpoints
from models import (
    ApiKey,
    CopyStatus,
    CopyStep,
    IdempotencyKey,
    Mode,
    Order,
    OrderCopy,
    OrderStatus,
    Sku,
    SubscriptionStatus,
    db,
    new_public_id,
)
from models.idempotency import KEEP_FOR
from tests.factories import Shop, copy_events, create_copy, make_shop, make_subscription
from tests.runs import execute_one

REDISPATCH_AFTER = timedelta(seconds=120)
REDISPATCH_MAX = timedelta(seconds=1800)
MAX_CLAIMS = 3
LEASE = RunConfig().lease


def _sweep(
    sessions, published, now, *, max_claims: int = MAX_CLAIMS, batch_size: int = 100
) -> SweepResult:
    with unit_of_work(sessions, published) as s:
        return sweep(
            s,
            now,
            redispatch_after=REDISPATCH_AFTER,
            redispatch_max=REDISPATCH_MAX,
            max_claims=max_claims,
            batch_size=batch_size,
        )


def _copy(sessions, clock, **options) -> OrderCopy:
    return _shop_and_copy(sessions, clock, **options)[1]


def _shop_and_copy(sessions, clock, **options) -> tuple[Shop, OrderCopy]:
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10)
    return shop, create_copy(sessions, shop.source.id, now=clock.now, **options)


def _set(sessions, copy_id: str, **values) -> None:
    with sessions.begin() as s:
        s.execute(update(OrderCopy).where(OrderCopy.id == copy_id).values(**values))


def _row(sessions, copy_id: str) -> OrderCopy:
    with sessions.begin() as s:
        return s.get_one(OrderCopy, copy_id)


def test_a_pending_copy_not_dispatched_recently_is_announced_again(sessions, clock, published):
    copy = _copy(sessions, clock)
    now = clock.advance(REDISPATCH_AFTER.total_seconds() + 1)

    result = _sweep(sessions, published, now)

    assert result == SweepResult(republished=[copy.id], rescued=[], gave_up=[])
    assert published == [copy.id]
    row = _row(sessions, copy.id)
    assert (row.status, row.dispatched_at) == (CopyStatus.PENDING, now)
    # Announced again now, so the next tick leaves it alone.
    assert _sweep(sessions, published, clock.advance(15)) == SweepResult()
    assert published == [copy.id]


def test_a_pending_copy_never_dispatched_is_announced(sessions, clock, published):
    copy = _copy(sessions, clock)
    _set(sessions, copy.id, dispatched_at=None)

    assert _sweep(sessions, published, clock.now).republished == [copy.id]
    assert published == [copy.id]


def _rings(sessions, published, clock, copy_id: str, until: float) -> list[float]:
    """Seconds after the copy's last doorbell at which the sweeper, ticking every 15 s
    up to ``until``, rang it again."""
    start, rung = clock.now, []
    while (clock.now - start).total_seconds() < until:
        if _sweep(sessions, published, clock.advance(15)).republished == [copy_id]:
            rung.append((clock.now - start).total_seconds())
    return rung


def test_a_copy_left_pending_is_rung_again_after_twice_as_long_each_time_up_to_a_bound(
    sessions, clock, published
):
    copy = _copy(sessions, clock)

    rung = _rings(sessions, published, clock, copy.id, until=3 * 3600)

    # Past 120 s, then 240, 480, 960, then 1,800 s each time (the first 15 s tick past each).
    waits = [later - earlier for earlier, later in zip([0.0, *rung], rung, strict=False)]
    assert waits == [135, 255, 495, 975, 1815, 1815, 1815, 1815]
    assert _row(sessions, copy.id).dispatches == len(rung)


def test_a_retry_starts_the_doorbells_waits_over(sessions, gateways, clock, published):
    copy = _copy(sessions, clock, place_target_order=True)
    _rings(sessions, published, clock, copy.id, until=3600)
    _set(sessions, copy.id, status=CopyStatus.FAILED, failed_at=clock.now)

    with unit_of_work(sessions, published) as s:
        lifecycle.retry(s, copy.id, s.get_one(OrderCopy, copy.id).mode, by="ops", now=clock.now)

    assert _row(sessions, copy.id).dispatches == 0
    assert _rings(sessions, published, clock, copy.id, until=400) == [135, 135 + 255]


def test_fresh_copies_are_left_alone(sessions, gateways, clock, published):
    pending = _copy(sessions, clock)
    running = _copy(sessions, clock, place_target_order=True)
    with failpoints.enabled("after_build"):
        assert execute_one(sessions, running.id, gateways=gateways, clock=clock) == Outcome.CRASHED
    done = _copy(sessions, clock)
    assert execute_one(sessions, done.id, gateways=gateways, clock=clock) == Outcome.COMPLETED
    failed = _copy(sessions, clock)
    _set(sessions, failed.id, status=CopyStatus.FAILED, failed_at=clock.now)
    before = {c.id: _row(sessions, c.id) for c in (pending, running, done, failed)}

    # Within the redispatch delay and the lease: nothing to do.
    result = _sweep(sessions, published, clock.advance(LEASE.total_seconds() - 1))

    assert result == SweepResult()
    assert published == []
    for copy_id, row in before.items():
        after = _row(sessions, copy_id)
        assert (after.status, after.dispatched_at) == (row.status, row.dispatched_at)


def test_a_pending_copy_waiting_for_its_next_attempt_is_left_alone(sessions, clock, published):
    copy = _copy(sessions, clock)
    _set(sessions, copy.id, next_attempt_at=clock.now + timedelta(hours=1))

    assert _sweep(sessions, published, clock.advance(600)) == SweepResult()
    assert published == []


def test_a_copy_whose_run_died_is_rescued_once_its_lease_expired(
    sessions, gateways, clock, published
):
    copy = _copy(sessions, clock, place_target_order=True)
    with failpoints.enabled("after_build"):
        assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.CRASHED
    lease_expires_at = _row(sessions, copy.id).lease_expires_at
    assert lease_expires_at == clock.now + LEASE

    now = clock.advance(LEASE.total_seconds() + 1)
    result = _sweep(sessions, published, now)

    assert result == SweepResult(republished=[], rescued=[copy.id], gave_up=[])
    assert published == [copy.id]
    row = _row(sessions, copy.id)
    assert (row.status, row.dispatched_at, row.step) == (
        CopyStatus.IN_PROGRESS,
        now,
        CopyStep.STOCK_RESERVED,
    )
    # One doorbell per expiry: the next tick does not ring again...
    assert _sweep(sessions, published, clock.advance(15)) == SweepResult()
    # ...unless that one was lost too.
    later = clock.advance(REDISPATCH_AFTER.total_seconds())
    assert _sweep(sessions, published, later).rescued == [copy.id]
    assert published == [copy.id, copy.id]

    # The doorbell's run picks up from the checkpoint.
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED


def test_a_copy_out_of_claims_is_failed_and_its_stock_released(
    sessions, gateways, clock, published
):
    shop, copy = _shop_and_copy(sessions, clock, place_target_order=True)
    with failpoints.enabled("after_reserve"):
        assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.CRASHED
    row = _row(sessions, copy.id)
    with sessions.begin() as s:
        assert s.get_one(Sku, shop.sku.id).stock_quantity == 8
    assert row.step == CopyStep.STOCK_RESERVED
    _set(sessions, copy.id, claims=MAX_CLAIMS)

    now = clock.advance(LEASE.total_seconds() + 1)
    result = _sweep(sessions, published, now)

    assert result == SweepResult(republished=[], rescued=[], gave_up=[copy.id])
    assert published == []
    row = _row(sessions, copy.id)
    assert row.status == CopyStatus.FAILED
    assert row.errors_log == {
        "order_copy": [
            f"gave up after {MAX_CLAIMS} attempts: the last run stopped answering "
            f"(lease expired at {(now - timedelta(seconds=1)):%Y-%m-%dT%H:%M:%SZ})"
        ]
    }
    assert (row.errors_count, row.failed_at, row.completed_at) == (1, now, None)
    assert (row.lease_expires_at, row.step) == (None, CopyStep.TARGET_BUILT)
    with sessions.begin() as s:
        assert s.get_one(Sku, shop.sku.id).stock_quantity == 10
        assert s.get_one(Order, row.target_order_id).status == OrderStatus.PENDING
        assert [e.kind for e in copy_events(s, copy.id)][-1] == "failed"


def test_a_copy_out_of_claims_fails_even_with_skip_errors(sessions, gateways, clock, published):
    copy = _copy(sessions, clock, place_target_order=True, skip_errors=True)
    with failpoints.enabled("after_build"):
        assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.CRASHED
    _set(sessions, copy.id, claims=MAX_CLAIMS)

    result = _sweep(sessions, published, clock.advance(LEASE.total_seconds() + 1))

    assert result.gave_up == [copy.id]
    row = _row(sessions, copy.id)
    assert row.target_order_id is not None
    assert (row.status, row.failed_at, row.completed_at) == (CopyStatus.FAILED, clock.now, None)
    assert list(row.errors_log) == ["order_copy"]


def test_a_copy_given_up_can_be_retried(sessions, gateways, clock, published):
    copy = _copy(sessions, clock, place_target_order=True)
    with failpoints.enabled("after_build"):
        assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.CRASHED
    _set(sessions, copy.id, claims=MAX_CLAIMS)
    _sweep(sessions, published, clock.advance(LEASE.total_seconds() + 1))

    with unit_of_work(sessions, published) as s:
        lifecycle.retry(s, copy.id, s.get_one(OrderCopy, copy.id).mode, by="ops", now=clock.now)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.COMPLETED
    assert _row(sessions, copy.id).errors_log == {}


def test_a_tick_announces_at_most_a_batch_oldest_first(sessions, clock, published):
    older = _copy(sessions, clock)
    clock.advance(1)
    newer = _copy(sessions, clock)
    clock.advance(REDISPATCH_AFTER.total_seconds() + 1)

    assert _sweep(sessions, published, clock.now, batch_size=1).republished == [older.id]
    assert _sweep(sessions, published, clock.now, batch_size=1).republished == [newer.id]
    assert published == [older.id, newer.id]


def test_the_sweepers_queries_read_the_partial_indexes_of_their_statuses(
    sessions, clock, published
):
    """Each looks for one status, spelled out, so PostgreSQL can use the index holding
    only the row versions of that status (migration 0008): a bound status would leave a
    prepared statement's generic plan without it (and scanning the table every sweep)."""
    _copy(sessions, clock)
    selects: list[tuple[str, Any]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "order_copies" in statement:
            selects.append((statement, parameters))

    event.listen(db.engine(), "before_cursor_execute", keep)
    try:
        _sweep(sessions, published, clock.advance(REDISPATCH_AFTER.total_seconds() + 1))
    finally:
        event.remove(db.engine(), "before_cursor_execute", keep)
    assert len(selects) == 2
    assert "status = 'pending'" in selects[0][0]
    assert "status = 'in_progress'" in selects[1][0]
    plans = []
    with sessions.begin() as s:
        cursor = s.connection().connection.driver_connection.cursor()
        cursor.execute("SET LOCAL enable_seqscan = off")  # the table is tiny here
        for statement, parameters in selects:
            cursor.execute(f"EXPLAIN {statement}", parameters)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    assert "ix_order_copies_pending_dispatched_at" in plans[0], plans[0]
    assert "ix_order_copies_leased_lease_expires_at" in plans[1], plans[1]


# --- remembered responses (Idempotency-Key) ----------------------------------------------


def _remembered(sessions, now, ages_in_hours: list[float]) -> list[str]:
    """A response remembered ``age`` hours before ``now`` per age: their ids, in that order."""
    with sessions.begin() as s:
        key = ApiKey(id=new_public_id(), name="k", mode=Mode.TEST, token_hash=new_public_id())
        s.add(key)
        rows = [
            IdempotencyKey(
                id=new_public_id(),
                api_key_id=key.id,
                mode=Mode.TEST,
                key=f"key-{n}",
                request_hash="0" * 64,
                response_status=201,
                response_body={},
                created_at=now - timedelta(hours=age),
            )
            for n, age in enumerate(ages_in_hours)
        ]
        s.add_all(rows)
    return [row.id for row in rows]


def _kept(sessions) -> set[str]:
    with sessions.begin() as s:
        return set(s.scalars(select(IdempotencyKey.id)))


def _purge(sessions, now, batch_size: int) -> int:
    with sessions.begin() as s:
        return purge_idempotency_keys(s, now - KEEP_FOR, batch_size=batch_size)


def test_remembered_responses_older_than_a_day_are_purged_oldest_first_a_batch_at_a_time(
    sessions, clock
):
    now = clock.now
    old = _remembered(sessions, now, [30, 48, 24.5, 26, 100])
    fresh = _remembered(sessions, now, [0, 23.5])

    assert _purge(sessions, now, batch_size=2) == 2
    assert _kept(sessions) == {old[0], old[3], old[2], *fresh}  # 100 h and 48 h went first
    assert _purge(sessions, now, batch_size=2) == 2
    assert _kept(sessions) == {old[2], *fresh}
    assert _purge(sessions, now, batch_size=2) == 1
    assert _purge(sessions, now, batch_size=2) == 0
    assert _kept(sessions) == set(fresh)


def test_a_renewal_given_up_is_retried_by_its_policy_with_the_reason_in_its_history(
    sessions, gateways, clock, published
):
    with sessions.begin() as s:
        shop = make_shop(s, quantity=2, stock=10)
        subscription = make_subscription(
            s,
            shop.source,
            starts_at=clock.now,
            status=SubscriptionStatus.RUNNING,
            failure_policy={"retry_after_seconds": [3600], "final_action": "deactivate"},
        )
    copy = create_copy(
        sessions,
        shop.source.id,
        now=clock.now,
        order_subscription_id=subscription.id,
        place_target_order=True,
    )
    with failpoints.enabled("after_build"):
        assert execute_one(sessions, copy.id, gateways=gateways, clock=clock) == Outcome.CRASHED
    _set(sessions, copy.id, claims=MAX_CLAIMS)

    now = clock.advance(LEASE.total_seconds() + 1)
    assert _sweep(sessions, published, now).gave_up == [copy.id]

    row = _row(sessions, copy.id)
    assert (row.status, row.next_attempt_at) == (CopyStatus.PENDING, now + timedelta(hours=1))
    with sessions.begin() as s:
        retried = copy_events(s, copy.id)[-1]
    assert (retried.kind, retried.data["by"]) == ("retried", "failure_policy")
    assert retried.data["previous_errors"]["order_copy"][0].startswith(
        f"gave up after {MAX_CLAIMS} attempts"
    )
