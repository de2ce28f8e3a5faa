"""The renewal storm: N due subscriptions, from the tick to every copy finished, through the
real worker (issue 7, item 5).

The subscriptions renew the drain's 10-line source orders (placing the target with the
reused wallet entry). One tick message is sent as beat sends it; the worker (the Procfile's,
prefork -c 2) runs the tick, which queues the copies batch by batch and announces them in
``copy_orders`` messages of one chunk each (``ORDERCOPY_CHUNK_SIZE`` copies), and then
runs those. Timed from the first copy created to (a) the tick done (its message acknowledged)
and (b) the last copy finished; compared with the no-op drain's tasks/s of the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from bench import broker
from bench.broker import QUEUE
from bench.cpu import CpuMeter
from bench.environment import BenchEnvironment
from bench.workers import running_worker, wait_until
from models import (
    CopyStatus,
    Order,
    OrderCopy,
    OrderSubscription,
    SubscriptionStatus,
    new_public_id,
    utcnow,
)
from worker.app import RENEWALS_TICK_TASK, app

INSERT_BATCH = 10_000
#: The queue beat sends the tick to (``worker.app``'s routes).
RENEWALS_QUEUE = "renewals"


@dataclass(frozen=True)
class StormResult:
    subscriptions: int
    queued_seconds: float  # first copy created → the tick done (every copy created)
    seconds: float  # first copy created → last copy finished
    statuses: dict[str, int]
    cpu_seconds: float  # the worker's processes and its PostgreSQL backends

    @property
    def queued_rate(self) -> float:
        return self.subscriptions / self.queued_seconds

    @property
    def rate(self) -> float:
        return self.subscriptions / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds / self.subscriptions * 1000


def make_subscriptions(
    sessions: sessionmaker[Session], sources: Sequence[str], count: int, due: datetime
) -> None:
    """``count`` active monthly subscriptions due at ``due``, round robin over ``sources``."""
    with sessions.begin() as session:
        owners = [
            session.execute(
                select(
                    Order.id, Order.customer_id, Order.customer_payment_source_id, Order.mode
                ).where(Order.id == source_id)
            ).one()
            for source_id in sources
        ]
    for start in range(0, count, INSERT_BATCH):
        with sessions.begin() as session:
            session.execute(
                insert(OrderSubscription),
                [
                    {
                        "id": new_public_id(),
                        "mode": owner.mode,
                        "source_order_id": owner.id,
                        "customer_id": owner.customer_id,
                        "customer_payment_source_id": owner.customer_payment_source_id,
                        "frequency": "monthly",
                        "status": SubscriptionStatus.ACTIVE,
                        "starts_at": due,
                        "next_run_at": due,
                        "place_target_order": True,
                        "metadata_": {},
                        "failure_policy": {},
                    }
                    for owner in (
                        owners[n % len(owners)]
                        for n in range(start, min(count, start + INSERT_BATCH))
                    )
                ],
            )


def renewal_storm(
    bench: BenchEnvironment, sessions: sessionmaker[Session], sources: Sequence[str], count: int
) -> StormResult:
    broker.flush(bench.key_prefix)
    make_subscriptions(sessions, sources, count, utcnow() - timedelta(minutes=1))
    renewals = OrderCopy.order_subscription_id.is_not(None)

    def renewal_made() -> bool:
        with sessions.begin() as session:
            return session.scalar(select(OrderCopy.id).where(renewals).limit(1)) is not None

    def settled() -> bool:
        """Every subscription's copy made, none pending or in progress. Asked only once the
        broker is idle (nothing queued or unacknowledged, the tick included): a count over
        100,000 copies costs PostgreSQL ~80 ms, and polled every half second it took 15% of
        a core from the worker it measures."""
        if broker.queued(redis_client, bench.key_prefix, (QUEUE, RENEWALS_QUEUE)) != (0, 0):
            return False
        with sessions.begin() as session:
            made, open_ = session.execute(
                select(
                    func.count(),
                    func.count().filter(
                        OrderCopy.status.in_([CopyStatus.PENDING, CopyStatus.IN_PROGRESS])
                    ),
                ).where(renewals)
            ).one()
        return bool(made >= count and open_ == 0)

    redis_client = broker.client()
    try:
        with running_worker(bench.data_dir, f"storm-{bench.run_id}") as worker:
            meter = CpuMeter(worker.pid, bench.database_name)
            meter.start()
            app.send_task(RENEWALS_TICK_TASK, queue=RENEWALS_QUEUE)
            # The tick stamps a batch's copies with the moment the batch began: its end is
            # when its message is acknowledged, watched on the broker. A copy must exist
            # too: between the worker's BRPOP and its note of the message as unacknowledged,
            # the message is in neither place (at the very start, before any copy).
            wait_until(
                lambda: (
                    not broker.task_pending(
                        redis_client, bench.key_prefix, RENEWALS_QUEUE, RENEWALS_TICK_TASK
                    )
                    and renewal_made()
                ),
                max(300, count / 50),
                "the tick",
                worker,
                poll=0.02,
            )
            queued = datetime.now(UTC)
            wait_until(settled, max(600, count), "the storm", worker, poll=0.2)
            meter.stop()
    finally:
        redis_client.close()
    with sessions.begin() as session:
        first, last = session.execute(
            select(
                func.min(OrderCopy.created_at),
                func.max(func.coalesce(OrderCopy.completed_at, OrderCopy.failed_at)),
            ).where(renewals)
        ).one()
        statuses = dict(
            session.execute(
                select(OrderCopy.status, func.count()).where(renewals).group_by(OrderCopy.status)
            ).all()
        )
    return StormResult(
        subscriptions=count,
        queued_seconds=(queued - first).total_seconds(),
        seconds=(last - first).total_seconds(),
        statuses={str(k): v for k, v in statuses.items()},
        cpu_seconds=meter.seconds,
    )
