"""``python -m bench.renewals [--count N]``: a renewal storm. N due subscriptions (100,000
by default) are turned into queued copies by the real tick
(``copying.subscriptions.renewals.tick`` in batches of ``ORDERCOPY_RENEWALS_BATCH_SIZE``,
each batch one transaction, as the beat's task runs it), next to the baseline: one raw
SQL ``INSERT … SELECT`` of the same ``order_copies`` rows; and a second one, the tick's
writes (lock, copies, history, advance) as one raw SQL statement per batch, without its
Python. All run in this
invocation, on the same world, in the bench's own throwaway database.

The tick's copies are announced to a list rather than Redis: this measures the database
side of a tick (select, lock, schedule, insert, history, advance), which is what
a storm of due subscriptions costs.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from bench import environment

#: Source orders the subscriptions renew (round robin): each its customer and wallet entry.
SOURCES = 50
INSERT_BATCH = 10_000
SMOKE_COUNT = 50
SMOKE_SOURCES = 5

#: The baseline: the same copy rows, in one statement, nothing else (no lock, no
#: schedule, no history, no advance).
RAW_INSERT = """
INSERT INTO order_copies (
    id, mode, status, source_order_id, order_subscription_id, customer_payment_source_id,
    place_target_order, cancel_source_order, reuse_wallet, skip_errors, errors_log,
    errors_count, metadata, attempt, claims, retries, dispatched_at, period_key,
    created_at, updated_at)
SELECT substr(md5(s.id || clock_timestamp()::text), 1, 10), s.mode, 'pending',
    s.source_order_id, s.id, s.customer_payment_source_id, s.place_target_order, false,
    true, false, '{}', 0, '{}', 0, 0, 0, %(now)s,
    to_char(s.next_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), %(now)s, %(now)s
FROM order_subscriptions s
WHERE s.status IN ('active', 'running') AND s.next_run_at <= %(now)s
ON CONFLICT (order_subscription_id, period_key) DO NOTHING
"""


#: A second baseline: the tick's writes without its Python, one statement per batch:
#: lock a batch, insert its copies and their history, advance it (fixed monthly step,
#: no calendar rules).
RAW_TICK = """
WITH due AS (
    SELECT id, mode, source_order_id, customer_payment_source_id, place_target_order,
        next_run_at
    FROM order_subscriptions
    WHERE status = 'active' AND next_run_at <= %(now)s
    ORDER BY next_run_at LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), inserted AS (
    INSERT INTO order_copies (
        id, mode, status, source_order_id, order_subscription_id,
        customer_payment_source_id, place_target_order, cancel_source_order, reuse_wallet,
        skip_errors, errors_log, errors_count, metadata, attempt, claims, retries,
        dispatched_at, period_key, created_at, updated_at)
    SELECT substr(md5(d.id || clock_timestamp()::text), 1, 10), d.mode, 'pending',
        d.source_order_id, d.id, d.customer_payment_source_id, d.place_target_order, false,
        true, false, '{}', 0, '{}', 0, 0, 0, %(now)s,
        to_char(d.next_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        %(now)s, %(now)s
    FROM due d
    ON CONFLICT (order_subscription_id, period_key) DO NOTHING
    RETURNING id, mode
), history AS (
    INSERT INTO order_copy_events (order_copy_id, mode, attempt, kind, data, created_at,
        updated_at)
    SELECT id, mode, 0, 'created', '{"renewal": true}', %(now)s, %(now)s FROM inserted
), advanced AS (
    UPDATE order_subscriptions s
    SET next_run_at = d.next_run_at + interval '1 month', status = 'running',
        updated_at = %(now)s
    FROM due d WHERE s.id = d.id
)
SELECT count(*) FROM due
"""


@dataclass(frozen=True)
class Measure:
    name: str
    rows: int
    seconds: float
    cpu_seconds: float  # this process's CPU (the database's is not counted)

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.renewals", description=__doc__)
    parser.add_argument("--count", type=int, help="due subscriptions (default 100,000)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_COUNT} due subscriptions of {SMOKE_SOURCES} orders: proves "
        "the bench runs (make test runs it)",
    )
    options = parser.parse_args(argv)
    options.count = options.count or (SMOKE_COUNT if options.smoke else 100_000)
    return options


def make_world(sessions: object, count: int, due: datetime, sources: int = SOURCES) -> None:
    """``count`` active monthly subscriptions, all due at ``due``, over ``sources`` orders."""
    from sqlalchemy import insert
    from sqlalchemy.orm import Session, sessionmaker

    from bench.world import make_sources
    from models import Order, OrderSubscription, SubscriptionStatus, new_public_id

    assert isinstance(sessions, sessionmaker)
    makers: sessionmaker[Session] = sessions
    with makers.begin() as session:
        orders = [
            session.get_one(Order, source_id) for source_id in make_sources(makers, sources, 1)
        ]
        owners = [(o.id, o.customer_id, o.customer_payment_source_id, o.mode) for o in orders]
    for start in range(0, count, INSERT_BATCH):
        with makers.begin() as session:
            session.execute(
                insert(OrderSubscription),
                [
                    {
                        "id": new_public_id(),
                        "mode": owners[n % sources][3],
                        "source_order_id": owners[n % sources][0],
                        "customer_id": owners[n % sources][1],
                        "customer_payment_source_id": owners[n % sources][2],
                        "frequency": "monthly",
                        "status": SubscriptionStatus.ACTIVE,
                        "starts_at": due,
                        "next_run_at": due,
                        "metadata_": {},
                        "failure_policy": {},
                    }
                    for n in range(start, min(count, start + INSERT_BATCH))
                ],
            )


def vacuum(psycopg_url: str) -> None:
    import psycopg

    with psycopg.connect(psycopg_url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def forget_copies(psycopg_url: str) -> None:
    import psycopg

    with psycopg.connect(psycopg_url, autocommit=True) as connection:
        connection.execute("TRUNCATE order_copy_events, order_copies")
    vacuum(psycopg_url)


def run_raw(psycopg_url: str, now: datetime) -> Measure:
    import psycopg

    with psycopg.connect(psycopg_url) as connection:
        started, cpu = time.perf_counter(), time.process_time()
        with connection.transaction():
            inserted = connection.execute(RAW_INSERT, {"now": now}).rowcount
        return Measure(
            "raw SQL INSERT … SELECT (one statement)",
            inserted,
            time.perf_counter() - started,
            time.process_time() - cpu,
        )


def run_raw_tick(psycopg_url: str, now: datetime, batch_size: int) -> Measure:
    import psycopg

    with psycopg.connect(psycopg_url) as connection:
        started, cpu = time.perf_counter(), time.process_time()
        renewed = 0
        while True:
            with connection.transaction():
                row = connection.execute(RAW_TICK, {"now": now, "batch": batch_size}).fetchone()
            taken = row[0] if row else 0
            renewed += taken
            if taken < batch_size:
                break
        return Measure(
            f"raw SQL tick: the same writes, one statement per {batch_size:,}",
            renewed,
            time.perf_counter() - started,
            time.process_time() - cpu,
        )


def reset_subscriptions(psycopg_url: str, due: datetime) -> None:
    """Every subscription due again, no copy left."""
    import psycopg

    with psycopg.connect(psycopg_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE order_subscriptions SET status = 'active', next_run_at = %(due)s",
            {"due": due},
        )
    forget_copies(psycopg_url)


def run_tick(sessions: object, now: datetime, batch_size: int) -> tuple[Measure, int]:
    """Tick batch after batch until nothing is due, as ``tasks.renewals.tick`` does;
    returns the measure and the copies announced."""
    from sqlalchemy.orm import Session, sessionmaker

    from copying.copies.dispatch import unit_of_work
    from copying.subscriptions.renewals import tick

    assert isinstance(sessions, sessionmaker)
    makers: sessionmaker[Session] = sessions
    announced: list[str] = []
    subscriptions = 0
    started, cpu = time.perf_counter(), time.process_time()
    while True:
        with unit_of_work(makers, announced.extend) as session:
            result = tick(session, now, batch_size=batch_size)
        subscriptions += result.subscriptions
        if result.subscriptions < batch_size:
            break
    measure = Measure(
        f"renewal tick (copying.subscriptions.renewals, batches of {batch_size:,})",
        subscriptions,
        time.perf_counter() - started,
        time.process_time() - cpu,
    )
    return measure, len(announced)


def check_renewed(sessions: object, count: int, now: datetime) -> None:
    """Every subscription renewed once and advanced past ``now``."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session, sessionmaker

    from models import OrderCopy, OrderSubscription

    assert isinstance(sessions, sessionmaker)
    makers: sessionmaker[Session] = sessions
    with makers.begin() as session:
        copies = session.scalar(select(func.count()).select_from(OrderCopy))
        pairs = session.scalar(
            select(func.count()).select_from(
                select(OrderCopy.order_subscription_id, OrderCopy.period_key).distinct().subquery()
            )
        )
        still_due = session.scalar(
            select(func.count())
            .select_from(OrderSubscription)
            .where(OrderSubscription.next_run_at <= now)
        )
    if not copies == pairs == count or still_due:
        raise SystemExit(f"tick went wrong: {copies} copies, {pairs} periods, {still_due} due")


def render(rows: list[tuple[str, str, str, str]], title: str) -> str:
    header = ("measure", "rows/s", "time", "ratio")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([title, "", line(header), separator, *(line(r) for r in rows)])


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    data_dir = Path(tempfile.mkdtemp(prefix="ordercopy-bench-renewals-"))
    bench = environment.configure(data_dir)
    environment_log_level = "WARNING"
    import os

    os.environ["ORDERCOPY_LOG_LEVEL"] = environment_log_level
    # Only now may anything read the settings.
    from bench.world import throwaway_database
    from config import get_settings
    from config.logging import configure_logging
    from models import db, utcnow

    settings = get_settings()
    configure_logging(settings)
    try:
        with throwaway_database(bench):
            sessions = db.sessions()
            now = utcnow()
            due = now - timedelta(minutes=5)
            make_world(sessions, options.count, due, SMOKE_SOURCES if options.smoke else SOURCES)
            vacuum(bench.psycopg_url)
            raw = run_raw(bench.psycopg_url, now)
            if raw.rows != options.count:
                raise SystemExit(f"the baseline inserted {raw.rows} rows, not {options.count}")
            forget_copies(bench.psycopg_url)
            raw_tick = run_raw_tick(bench.psycopg_url, now, settings.renewals_batch_size)
            if raw_tick.rows != options.count:
                raise SystemExit(f"the raw tick renewed {raw_tick.rows}, not {options.count}")
            reset_subscriptions(bench.psycopg_url, due)
            ticked, announced = run_tick(sessions, now, settings.renewals_batch_size)
            check_renewed(sessions, options.count, now)
            if announced != options.count:
                raise SystemExit(f"the tick announced {announced} copies, not {options.count}")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    load = os.getloadavg()[0]
    rows = [
        (
            raw.name,
            f"{raw.per_second:,.0f}",
            f"{raw.seconds:.2f} s",
            "1.00 (baseline)",
        ),
        (
            raw_tick.name,
            f"{raw_tick.per_second:,.0f}",
            f"{raw_tick.seconds:.2f} s",
            f"{raw_tick.per_second / raw.per_second:.2f}",
        ),
        (
            ticked.name,
            f"{ticked.per_second:,.0f}",
            f"{ticked.seconds:.2f} s ({ticked.cpu_seconds:.2f} s CPU here)",
            f"{ticked.per_second / raw.per_second:.2f} "
            f"({ticked.per_second / raw_tick.per_second:.2f} x the raw tick)",
        ),
    ]
    title = (
        f"renewal storm: {options.count:,} due subscriptions -> pending copies "
        f"({os.cpu_count()} CPUs, load average {load:.1f}); ratio = tick / baseline"
    )
    print(render(rows, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
