"""``metric_counts``: PostgreSQL's triggers keep the counts ``/metrics`` reports exactly as
a recount of the tables finds them, whoever writes the rows; :func:`counts.reconcile`
repairs them, :func:`counts.fold` keeps them short."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Connection, delete, func, insert, select, text, update

from copying.copies import counts, lifecycle
from copying.runs import Outcome
from models import CountName, MetricCount, Mode, OrderCopy, utcnow
from tests.factories import create_copy, make_shop
from tests.runs import execute_one

COUNTS = MetricCount.__table__


def _run_times(connection: Connection, ids: list[str], seconds: list[float]) -> None:
    started = utcnow() - timedelta(hours=2)
    for copy_id, taken in zip(ids, seconds, strict=True):
        connection.execute(
            update(OrderCopy)
            .where(OrderCopy.id == copy_id)
            .values(started_at=started, completed_at=started + timedelta(seconds=taken))
        )


@pytest.fixture
def world(committed, gateways) -> dict[str, list[str]]:
    """Copies in most statuses, some live, two failed runs, run times on bucket bounds."""
    with committed.begin() as session:
        good = make_shop(session, stock=100)
        declined = make_shop(session, token="tok_declined")
        live = make_shop(session, mode=Mode.LIVE)
    done = [create_copy(committed, good.source.id).id for _ in range(5)]
    for copy_id in done:
        assert execute_one(committed, copy_id, gateways=gateways) == Outcome.COMPLETED
    failed = create_copy(committed, declined.source.id, place_target_order=True).id
    assert execute_one(committed, failed, gateways=gateways) == Outcome.FAILED
    with committed.begin() as session:
        lifecycle.retry(session, failed, Mode.TEST, by="test")
    assert execute_one(committed, failed, gateways=gateways) == Outcome.FAILED
    aborted = create_copy(committed, good.source.id).id
    with committed.begin() as session:
        lifecycle.abort(session, aborted, Mode.TEST, by="test")
    pending = [create_copy(committed, good.source.id).id for _ in range(2)]
    pending.append(create_copy(committed, live.source.id, mode=Mode.LIVE).id)
    with committed.begin() as session:
        # On a bound, just past it, far past the last: each lands where a recount puts it.
        _run_times(session.connection(), done, [0.1, 0.100001, 2.5, 3600.0, 3600.5])
    return {"done": done, "failed": [failed], "aborted": [aborted], "pending": pending}


def _both(committed) -> tuple[counts.Counts, counts.Counts]:
    with committed.begin() as session:
        connection = session.connection()
        return counts.read(connection), counts.recount(connection)


def test_the_triggers_keep_what_a_recount_finds(committed, world):
    kept, counted = _both(committed)

    assert kept == counted
    assert counted[Mode.TEST, CountName.COPIES, "completed"] == 5
    assert counted[Mode.TEST, CountName.COPIES, "pending"] == 2
    assert counted[Mode.LIVE, CountName.COPIES, "pending"] == 1
    assert counted[Mode.TEST, CountName.COPY_EVENTS, "failed"] == 2
    durations = {
        label: counted.get((Mode.TEST, CountName.COPY_DURATIONS, label), 0)
        for label in ("0.1", "0.25", "2.5", "3600.0", counts.INFINITY)
    }
    assert durations == {"0.1": 1, "0.25": 1, "2.5": 1, "3600.0": 1, counts.INFINITY: 1}
    micros = counted[Mode.TEST, CountName.COPY_DURATION_MICROS, ""]
    assert micros == 100_000 + 100_001 + 2_500_000 + 3_600_000_000 + 3_600_500_000


def test_writes_by_hand_deletes_and_rollbacks_are_counted_too(committed, world):
    with committed.begin() as session:
        session.execute(text("UPDATE order_copies SET status = 'aborted' WHERE status = 'pending'"))
        session.execute(delete(OrderCopy).where(OrderCopy.id == world["failed"][0]))
    with committed() as session:
        session.execute(update(OrderCopy).values(completed_at=None))
        session.rollback()

    kept, counted = _both(committed)

    assert kept == counted
    assert counted[Mode.TEST, CountName.COPIES, "aborted"] == 3
    assert (Mode.TEST, CountName.COPIES, "failed") not in counted
    assert (Mode.TEST, CountName.COPY_EVENTS, "failed") not in counted  # deleted with it
    assert counted[Mode.TEST, CountName.COPY_DURATION_MICROS, ""] > 0


def test_a_truncate_takes_its_counts_along(committed, world):
    with committed.begin() as session:
        session.execute(text("TRUNCATE order_copies CASCADE"))

    kept, counted = _both(committed)

    assert kept == counted == {}


def test_reconcile_writes_what_the_kept_counts_miss(committed, world):
    with committed.begin() as session:  # drift, as if a trigger had been disabled
        session.execute(
            insert(COUNTS),
            [
                {"mode": Mode.TEST, "name": CountName.COPIES, "label": "pending", "value": 3},
                {"mode": Mode.LIVE, "name": CountName.COPY_EVENTS, "label": "gone", "value": 1},
            ],
        )
        session.execute(
            delete(COUNTS).where(COUNTS.c.name == CountName.COPY_DURATIONS, COUNTS.c.label == "2.5")
        )

    with committed.begin() as session:
        corrections = counts.reconcile(session.connection())

    assert corrections == {
        (Mode.TEST, CountName.COPIES, "pending"): -3,
        (Mode.LIVE, CountName.COPY_EVENTS, "gone"): -1,
        (Mode.TEST, CountName.COPY_DURATIONS, "2.5"): 1,
    }
    kept, counted = _both(committed)
    assert kept == counted
    with committed.begin() as session:
        assert counts.reconcile(session.connection()) == {}


def test_fold_leaves_one_row_per_count_and_the_same_sums(committed, world):
    before, _ = _both(committed)
    with committed.begin() as session:
        rows = session.scalar(select(func.count()).select_from(COUNTS))
        folded = counts.fold(session.connection())

    with committed.begin() as session:
        after = session.scalar(select(func.count()).select_from(COUNTS))
    assert rows > folded == after == len(before)
    assert _both(committed) == (before, before)


def test_the_maintenance_tasks_recount_and_fold(committed, world):
    from tasks.maintenance import recount

    with committed.begin() as session:
        session.execute(
            insert(COUNTS),
            [{"mode": Mode.TEST, "name": CountName.COPIES, "label": "failed", "value": -1}],
        )

    assert recount() == 1
    assert recount() == 0
    kept, counted = _both(committed)
    assert kept == counted
