"""Scaling with size: one copy of a 1-, 10-, 100- and 1,000-line order, in this process.

``copying.runs.execute`` runs as the task runs it (on the worker's engine), while
SQLAlchemy's events count what reaches the database. The raw SQL copy of the same orders is the
baseline for each size.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from bench import cpu, raw_copy, world
from bench.environment import BenchEnvironment
from copying import runs
from copying.runs import Outcome
from models import db
from worker import runtime

SIZES = (1, 10, 100, 1000)


@dataclass
class Traffic:
    """What one copy sent to the database.

    ``round_trips`` adds to the statements what psycopg and the pool send on
    their own: BEGIN (psycopg opens each transaction with it), COMMIT or
    ROLLBACK, and the pool's pre-ping on every connection checkout (if it pings).
    """

    statements: int = 0
    begins: int = 0
    ends: int = 0
    pings: int = 0
    verbs: list[str] = field(default_factory=list)

    @property
    def round_trips(self) -> int:
        return self.statements + self.begins + self.ends + self.pings


@contextmanager
def counting() -> Iterator[Traffic]:
    traffic = Traffic()
    target = db.engine()

    def statement(*args: Any) -> None:
        traffic.statements += 1
        traffic.verbs.append(" ".join(str(args[2]).split()[:3]))

    def begin(*_: Any) -> None:
        traffic.begins += 1

    def end(*_: Any) -> None:
        traffic.ends += 1

    pings = getattr(target.pool, "_pre_ping", False)  # none of ours pings (models/db.py)

    def checkout(*_: Any) -> None:
        traffic.pings += pings

    hooks = [
        (target, "before_cursor_execute", statement),
        (target, "begin", begin),
        (target, "commit", end),
        (target, "rollback", end),
        (target.pool, "checkout", checkout),
    ]
    for where, name, hook in hooks:
        event.listen(where, name, hook)
    try:
        yield traffic
    finally:
        for where, name, hook in hooks:
            event.remove(where, name, hook)


@dataclass(frozen=True)
class SizeResult:
    lines: int
    copies: int
    median_ms: float
    cpu_ms: float  # mean client + PostgreSQL CPU per copy
    raw_sql_median_ms: float
    raw_sql_cpu_ms: float
    statements: int
    round_trips: int
    verbs: list[str]


class InProcessCpu:
    """CPU of this process plus that of the backends of ``database`` (the pool's connections)."""

    def __init__(self, database: str) -> None:
        self.database = database

    def _read(self) -> tuple[float, dict[int, float]]:
        servers = {
            p: s for p in cpu.backends(self.database) if (s := cpu.cpu_seconds(p)) is not None
        }
        return time.process_time(), servers

    def __enter__(self) -> InProcessCpu:
        self._client, self._servers = self._read()
        return self

    def __exit__(self, *_: object) -> None:
        client, servers = self._read()
        self.seconds = (client - self._client) + sum(
            s - self._servers.get(p, 0.0) for p, s in servers.items()
        )


def scaling(
    bench: BenchEnvironment, sessions: sessionmaker[Session], repeats: dict[int, int]
) -> list[SizeResult]:
    gateways, config = runtime.gateways(), runtime.run_config()
    results = []
    for lines in SIZES:
        count = repeats[lines]
        (source,) = world.make_sources(sessions, 1, lines)
        world.analyze(bench)
        warm_up, *ids = world.create_copies(sessions, [source], count + 1, lambda _: None)
        # Run first and not counted: it warms caches and connections.
        runs.execute(sessions, [warm_up], gateways=gateways, config=config)
        times, traffics = [], []
        with InProcessCpu(bench.database_name) as used:
            for copy_id in ids:
                with counting() as traffic:
                    began = time.perf_counter()
                    ran = runs.execute(sessions, [copy_id], gateways=gateways, config=config)
                    times.append(time.perf_counter() - began)
                traffics.append(traffic)
                outcome = ran.outcome[copy_id]
                if outcome is not Outcome.COMPLETED:
                    raise RuntimeError(f"the {lines}-line copy {copy_id} ended {outcome}")
        counts = {t.statements for t in traffics}
        if len(counts) != 1:
            raise RuntimeError(f"{lines}-line copies sent {sorted(counts)} statements")
        raw_ms, raw_cpu_ms = _raw_sql(bench, sessions, source, count)
        results.append(
            SizeResult(
                lines=lines,
                copies=count,
                median_ms=median(times) * 1000,
                cpu_ms=used.seconds / count * 1000,
                raw_sql_median_ms=raw_ms,
                raw_sql_cpu_ms=raw_cpu_ms,
                statements=traffics[-1].statements,
                round_trips=traffics[-1].round_trips,
                verbs=traffics[-1].verbs,
            )
        )
    return results


def _raw_sql(
    bench: BenchEnvironment, sessions: sessionmaker[Session], source: str, count: int
) -> tuple[float, float]:
    """The raw SQL copy of the same order: median wall ms and mean CPU ms per copy."""
    warm_up, *ids = world.insert_pending_copies(sessions, [source], count + 1)
    times = []
    with psycopg.connect(bench.psycopg_url) as conn:
        raw_copy.copy_one(conn, warm_up)
        with InProcessCpu(bench.database_name) as used:
            for copy_id in ids:
                began = time.perf_counter()
                if not raw_copy.copy_one(conn, copy_id):
                    raise RuntimeError(f"raw SQL could not claim {copy_id}")
                times.append(time.perf_counter() - began)
    return median(times) * 1000, used.seconds / count * 1000
