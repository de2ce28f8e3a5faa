"""The world a bench run copies in: its throwaway database and its orders.

Source orders are built with the test factories (the real domain code); copies
are created with ``copying.copies.lifecycle.create`` and announced by the worker's
publisher, as the web app does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import psycopg
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from bench.environment import ADMIN_URL, BenchEnvironment
from copying.copies import lifecycle
from copying.copies.dispatch import unit_of_work
from copying.copies.options import CopyOptions
from migrations import upgrade
from models import CopyStatus, Mode, OrderCopy, Sku, db, new_public_id, utcnow
from tests.factories import Line, make_customer, make_order, make_sku, make_wallet_entry

#: Stock that never runs out during a run: the bench measures copies, not shortages.
PLENTY = 1_000_000_000
CREATE_BATCH = 500


@contextmanager
def throwaway_database(bench: BenchEnvironment) -> Iterator[str]:
    """A fresh database migrated to head; dropped afterwards, whatever happened."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{bench.database_name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{bench.database_name}"')
    try:
        upgrade(bench.database_url)
        yield bench.database_url
    finally:
        db.dispose()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{bench.database_name}" WITH (FORCE)')


def make_sources(
    sessions: sessionmaker[Session], count: int, lines: int, *, shared_skus: bool = False
) -> list[str]:
    """``count`` pending source orders of ``lines`` SKU lines, each with its customer and
    wallet entry (``tok_visa``). Each order has SKUs of its own unless ``shared_skus``:
    two copies running side by side then never wait on each other's stock row locks."""
    ids: list[str] = []
    with sessions.begin() as session:
        catalog = _skus(session, lines) if shared_skus else []
        for _ in range(count):
            skus = catalog or _skus(session, lines)
            customer = make_customer(session)
            entry = make_wallet_entry(session, customer)
            order = make_order(
                session, [Line(sku, 2) for sku in skus], customer=customer, wallet_entry=entry
            )
            ids.append(order.id)
    return ids


def analyze(bench: BenchEnvironment) -> None:
    """Give the planner statistics, as autovacuum does in a database in use: a world built
    a moment ago has none, and PostgreSQL then plans the joins of a 1,000-line order as
    nested loops over whole tables (a 1,000-line copy measured ~4x slower without them)."""
    with psycopg.connect(bench.psycopg_url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def _skus(session: Session, count: int) -> list[Sku]:
    return [make_sku(session, price=100 + n, stock=PLENTY) for n in range(count)]


def create_copies(
    sessions: sessionmaker[Session],
    sources: Sequence[str],
    count: int,
    publish: Callable[[Sequence[str]], None],
) -> list[str]:
    """``count`` pending copies (round robin over ``sources``) that place the target with the
    reused wallet, created through the engine and announced after each commit."""
    ids: list[str] = []
    for start in range(0, count, CREATE_BATCH):
        with unit_of_work(sessions, publish) as session:
            ids += [
                create_copy(session, sources[n % len(sources)]).id
                for n in range(start, min(count, start + CREATE_BATCH))
            ]
    return ids


def create_copy(session: Session, source_id: str) -> OrderCopy:
    return lifecycle.create(
        session,
        mode=Mode.TEST,
        source_order_id=source_id,
        options=CopyOptions(place_target_order=True, reuse_wallet=True),
    )


def insert_pending_copies(
    sessions: sessionmaker[Session], sources: Sequence[str], count: int
) -> list[str]:
    """Bare ``pending`` rows for the raw SQL baseline (no history, no doorbell)."""
    now = utcnow()
    ids = [new_public_id() for _ in range(count)]
    rows = [
        {
            "id": copy_id,
            "status": CopyStatus.PENDING,
            "source_order_id": sources[n % len(sources)],
            **CopyOptions(place_target_order=True).as_columns(),
            "errors_log": {},
            "errors_count": 0,
            "metadata_": {},
            "attempt": 0,
            "claims": 0,
            "mode": Mode.TEST,
            "dispatched_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for n, copy_id in enumerate(ids)
    ]
    with sessions.begin() as session:
        session.execute(insert(OrderCopy), rows)
    return ids


def open_copies(sessions: sessionmaker[Session], ids: Sequence[str] | None = None) -> int:
    """How many copies (of ``ids``, or all) are still pending or in progress."""
    query = select(func.count()).where(
        OrderCopy.status.in_([CopyStatus.PENDING, CopyStatus.IN_PROGRESS])
    )
    if ids is not None:
        query = query.where(OrderCopy.id.in_(list(ids)))
    with sessions.begin() as session:
        return session.scalar(query) or 0


def finished_span(
    sessions: sessionmaker[Session], ids: Sequence[str]
) -> tuple[datetime, datetime, dict[str, int]]:
    """First claim, last finish and the count per final status of the copies ``ids``."""
    with sessions.begin() as session:
        first, last = session.execute(
            select(
                func.min(OrderCopy.started_at),
                func.max(func.coalesce(OrderCopy.completed_at, OrderCopy.failed_at)),
            ).where(OrderCopy.id.in_(list(ids)))
        ).one()
        statuses = dict(
            session.execute(
                select(OrderCopy.status, func.count())
                .where(OrderCopy.id.in_(list(ids)))
                .group_by(OrderCopy.status)
            ).all()
        )
    if first is None or last is None:
        raise RuntimeError("no copy was claimed and finished")
    return first, last, {str(k): v for k, v in statuses.items()}
