"""Create-to-completed latency at a steady, paced load below the drain rate."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bench import broker, world
from bench.environment import BenchEnvironment
from bench.workers import running_worker, wait_until
from copying.copies.dispatch import unit_of_work
from models import CopyStatus, OrderCopy
from worker.publisher import publish

WARM_UP = 4


@dataclass(frozen=True)
class LatencyResult:
    offered_rate: float  # copies/s asked for
    achieved_rate: float  # copies/s actually created
    copies: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    #: Last completion minus last creation: about one copy's time when the worker kept up,
    #: growing with the backlog when it did not (the load was not really half its rate).
    lag_ms: float

    @property
    def tail_ratio(self) -> float:
        return self.p99_ms / self.p50_ms


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def paced_latency(
    bench: BenchEnvironment,
    sessions: sessionmaker[Session],
    sources: Sequence[str],
    rate: float,
    count: int,
) -> LatencyResult:
    """Create ``count`` copies one request at a time, ``rate`` per second, each committed
    and announced like the web app does, and read create → completed from the rows."""
    broker.flush(bench.key_prefix)
    with running_worker(bench.data_dir, f"latency-{bench.run_id}") as worker:
        warm = world.create_copies(sessions, sources[:WARM_UP], WARM_UP, publish)
        wait_until(lambda: world.open_copies(sessions, warm) == 0, 120, "warm-up copies", worker)
        ids: list[str] = []
        began = time.monotonic()
        for n in range(count):
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with unit_of_work(sessions, publish) as session:
                ids.append(world.create_copy(session, sources[n % len(sources)]).id)
        achieved = count / (time.monotonic() - began)
        wait_until(
            lambda: world.open_copies(sessions, ids) == 0,
            max(120, count / 5),
            "paced copies to finish",
            worker,
            poll=0.2,
        )
    with sessions.begin() as session:
        rows = session.execute(
            select(OrderCopy.created_at, OrderCopy.completed_at, OrderCopy.status).where(
                OrderCopy.id.in_(ids)
            )
        ).all()
        last_created = max(row.created_at for row in rows)
        last_completed = max(row.completed_at or last_created for row in rows)
    if any(row.status != CopyStatus.COMPLETED for row in rows):
        raise RuntimeError("a paced copy did not complete")
    latencies = sorted((row.completed_at - row.created_at).total_seconds() * 1000 for row in rows)
    return LatencyResult(
        offered_rate=rate,
        achieved_rate=achieved,
        copies=count,
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        max_ms=latencies[-1],
        lag_ms=(last_completed - last_created).total_seconds() * 1000,
    )
