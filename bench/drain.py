"""The worker drain: copies of 10-line orders through the real worker, as production runs it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from bench import broker, world
from bench.cpu import CpuMeter
from bench.environment import BenchEnvironment
from bench.memory import MemoryProfile, RssSampler
from bench.workers import running_worker
from worker.publisher import publish


@dataclass(frozen=True)
class DrainResult:
    copies: int
    seconds: float  # first message taken → last acknowledged (the broker's view)
    db_seconds: float  # first claim → last finish (the copies' own timestamps)
    statuses: dict[str, int]
    memory: MemoryProfile
    cpu_seconds: float  # the worker's processes and its PostgreSQL backends
    server_cpu_seconds: float  # of which PostgreSQL

    @property
    def rate(self) -> float:
        return self.copies / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds / self.copies * 1000

    @property
    def db_rate(self) -> float:
        return self.copies / self.db_seconds


def worker_drain(
    bench: BenchEnvironment,
    sessions: sessionmaker[Session],
    sources: Sequence[str],
    count: int,
    *,
    rss_interval: float = 0.2,
) -> DrainResult:
    """Create ``count`` copies (placing, reusing the wallet) and announce them, then start a
    worker on the full queue and time it empty, sampling its memory every ``rss_interval``
    seconds meanwhile."""
    broker.flush(bench.key_prefix)
    ids = world.create_copies(sessions, sources, count, publish)
    with (
        running_worker(bench.data_dir, f"drain-{bench.run_id}") as worker,
        RssSampler(worker.pid, rss_interval) as rss,
    ):
        meter = CpuMeter(worker.pid, bench.database_name)
        drain = broker.time_drain(
            bench.key_prefix, count, worker, timeout=max(300, count / 2), meter=meter
        )
    left = world.open_copies(sessions, ids)
    if left:
        raise RuntimeError(f"{left} copies still open after the queue drained")
    first, last, statuses = world.finished_span(sessions, ids)
    return DrainResult(
        copies=count,
        seconds=drain.seconds,
        db_seconds=(last - first).total_seconds(),
        statuses=statuses,
        memory=rss.during(drain.started, drain.finished),
        cpu_seconds=meter.seconds,
        server_cpu_seconds=meter.server_seconds,
    )
