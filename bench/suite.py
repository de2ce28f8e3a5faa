"""The whole bench, phase by phase, in one throwaway database and one broker key prefix."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench import baselines, broker, drain, latency, sizes, storm, world
from bench.environment import BenchEnvironment
from models import db

LINES = 10
LATENCY_LOAD = 0.5  # of the measured drain rate


@dataclass(frozen=True)
class Plan:
    copies: int
    latency_seconds: float  # of paced creation
    size_repeats: dict[int, int] = field(default_factory=dict)
    storm: int = 0  # due subscriptions in the renewal storm
    #: Source orders the drain copies round robin; each has SKUs of its own.
    sources: int = 100
    min_latency_copies: int = 100  # enough for a p99 that is not the maximum
    rss_interval: float = 0.2  # seconds between memory samples of the draining worker


QUICK = Plan(
    copies=500, latency_seconds=20, size_repeats={1: 10, 10: 10, 100: 5, 1000: 3}, storm=1000
)
FULL = Plan(
    copies=5000, latency_seconds=60, size_repeats={1: 30, 10: 30, 100: 10, 1000: 5}, storm=10_000
)
#: ``--smoke`` (``make test``): every phase on a few copies, to prove the bench runs; its
#: figures measure nothing. Memory is sampled often enough for a drain of a fraction of a
#: second.
SMOKE = Plan(
    copies=60,
    latency_seconds=0,
    size_repeats={1: 2, 10: 2, 100: 1, 1000: 1},
    storm=60,
    sources=10,
    min_latency_copies=10,
    rss_interval=0.005,
)


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def problems(results: dict[str, Any]) -> list[str]:
    """What went wrong in a run that finished: copies that did not complete. A rate of
    copies that failed measures nothing, and a bench that stops copying must not pass
    unseen. (The other phases raise at once.)"""
    found = []
    for what, statuses, count in (
        ("worker drain", results["drain"].statuses, results["drain"].copies),
        ("renewal storm", results["storm"].statuses, results["storm"].subscriptions),
    ):
        if statuses != {"completed": count}:
            found.append(f"{what}: {count} copies, {statuses}, not all completed")
    return found


def run(bench: BenchEnvironment, plan: Plan) -> dict[str, Any]:
    """Every measurement; returns the raw results (``bench.report`` turns them into a table)."""
    began = time.monotonic()
    try:
        with world.throwaway_database(bench):
            sessions = db.sessions()
            say(f"database {bench.database_name}, broker prefix {bench.key_prefix!r}")
            sources = world.make_sources(sessions, plan.sources, LINES)
            world.analyze(bench)

            say(f"no-op Celery drain of {plan.copies} messages")
            noop = baselines.noop_drain(bench, plan.copies)
            say(f"  {noop.per_second:.0f} tasks/s")
            raw = {}
            for processes in (1, 2):
                say(f"raw SQL copy loop, {processes} process(es), {plan.copies} copies")
                ids = world.insert_pending_copies(sessions, sources, plan.copies)
                raw[processes] = baselines.raw_sql(bench, ids, processes)
                say(f"  {raw[processes].per_second:.0f} copies/s")

            say(f"worker drain of {plan.copies} copies of {LINES}-line orders")
            drained = drain.worker_drain(
                bench, sessions, sources, plan.copies, rss_interval=plan.rss_interval
            )
            say(f"  {drained.rate:.0f} copies/s {drained.statuses}")

            say("copy time, statements and round trips by order size")
            by_size = sizes.scaling(bench, sessions, plan.size_repeats)

            load = drained.rate * LATENCY_LOAD
            paced_copies = max(plan.min_latency_copies, round(load * plan.latency_seconds))
            say(f"latency of {paced_copies} copies created at {load:.1f}/s")
            paced = latency.paced_latency(bench, sessions, sources, load, paced_copies)
            say(f"  p50 {paced.p50_ms:.0f} ms, p99 {paced.p99_ms:.0f} ms")

            say(f"renewal storm of {plan.storm:,} due subscriptions")
            stormed = storm.renewal_storm(bench, sessions, sources, plan.storm)
            say(f"  {stormed.queued_rate:.0f} queued/s, {stormed.rate:.0f} completed/s")
    finally:
        broker.flush(bench.key_prefix)
    return {
        "noop": noop,
        "raw_sql": raw,
        "combined": baselines.combined(noop.per_second, raw[2].per_second),
        "drain": drained,
        "sizes": by_size,
        "latency": paced,
        "storm": stormed,
        "seconds": time.monotonic() - began,
    }
