"""Baselines, run in the same invocation as the worker they judge.

* ``noop``: the no-op Celery task drained by the project's worker settings
  (prefork -c 2, acks_late, prefetch 1), the per-message ceiling.
* ``raw_sql``: the lean psycopg copy of ``bench.raw_copy`` in 1 and 2 processes.
* ``combined``: 1 / (1/noop + 1/raw_sql_2proc), the rate a perfect Celery + SQL
  worker would reach here (each message pays Celery's cost, then the SQL's).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass

from bench import broker, raw_copy
from bench.cpu import CpuMeter
from bench.environment import BenchEnvironment
from bench.noop import NOOP_TASK
from bench.workers import running_worker


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float
    cpu_seconds: float  # client and PostgreSQL server CPU (see bench.cpu)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds per message or copy."""
        return self.cpu_seconds / self.count * 1000


def noop_drain(bench: BenchEnvironment, count: int) -> Rate:
    """Preload ``count`` no-op messages, start a worker, time the drain."""
    broker.flush(bench.key_prefix)
    broker.send(NOOP_TASK, [f"noop{n:07d}" for n in range(count)])
    with running_worker(bench.data_dir, f"noop-{bench.run_id}", include="bench.noop") as worker:
        meter = CpuMeter(worker.pid, bench.database_name)
        drain = broker.time_drain(
            bench.key_prefix, count, worker, timeout=max(120, count / 50), meter=meter
        )
    return Rate(drain.messages, drain.seconds, meter.seconds)


def raw_sql(bench: BenchEnvironment, copy_ids: Sequence[str], processes: int) -> Rate:
    """Copy ``copy_ids`` with ``processes`` raw SQL loops started together; ids are dealt
    round robin, one transaction per copy."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes)
    results = context.Queue()
    shares = [list(copy_ids[n::processes]) for n in range(processes)]
    loops = [
        context.Process(target=raw_copy.copy_loop, args=(bench.psycopg_url, share, start, results))
        for share in shares
    ]
    for loop in loops:
        loop.start()
    try:
        spans = [results.get(timeout=600) for _ in loops]
    finally:
        for loop in loops:
            loop.join(30)
            if loop.is_alive():
                loop.kill()
    done = sum(span[2] for span in spans)
    if done != len(copy_ids):
        raise RuntimeError(f"raw SQL copied {done} of {len(copy_ids)} copies")
    began = min(span[0] for span in spans)
    ended = max(span[1] for span in spans)
    return Rate(done, ended - began, sum(span[3] for span in spans))


def combined(noop: float, raw_sql_2proc: float) -> float:
    """Rates add as the inverse of their sum of costs: 1 / (1/noop + 1/raw_sql_2proc)."""
    return 1 / (1 / noop + 1 / raw_sql_2proc)
