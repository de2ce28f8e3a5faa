"""``GET /metrics``: the copies as Prometheus sees them, read from the database at scrape time.

Every value is counted in PostgreSQL (or the embedded SQLite) when Prometheus
asks, so any number of web processes serve the same numbers and nothing is
lost when one restarts:

- gauges: copies by status, the age of the oldest due pending copy, renewals due;
- counters from the copies' history (append-only): copies created, runs that
  completed, runs that failed (a copy that fails, is retried and fails again counts
  twice);
- a histogram of completed copies' time from first claim to completion.

Deleting a copy deletes its history, so a counter can go down: Prometheus reads
that as a counter reset. The worker's own per-process metrics (task runs, run
time) are served by the worker (``worker/metrics.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import structlog
from fastapi import APIRouter
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Float,
    case,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from copying.copies.history import EventKind
from copying.subscriptions.subscription_states import RENEWING
from models import (
    CircuitState,
    CopyStatus,
    EventStatus,
    Mode,
    OrderCopy,
    OrderCopyEvent,
    OrderSubscription,
    Webhook,
    WebhookEvent,
    db,
    utcnow,
)

log = structlog.get_logger("ordercopy.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds from a copy's first claim to its completion.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
#: The history's kinds counted, each by its own counter (``ordercopy_copies_<kind>_total``).
COUNTED = (EventKind.CREATED, EventKind.COMPLETED, EventKind.FAILED)
#: A scrape that takes longer than this gives up (PostgreSQL); Prometheus sees a failed scrape.
STATEMENT_TIMEOUT_MS = 5000


def _seconds(connection: Connection) -> ColumnElement[float]:
    """A completed copy's run time in seconds, as this database computes it."""
    if connection.dialect.name == "sqlite":
        return (func.julianday(OrderCopy.completed_at) - func.julianday(OrderCopy.started_at)) * (
            86400.0
        )
    return type_coerce(
        func.extract("epoch", OrderCopy.completed_at - OrderCopy.started_at), Float()
    )


def _counted(connection: Connection, statement: Executable, keys: Iterable[Any]) -> dict[Any, int]:
    """``statement``'s ``(key, ..., count)`` rows over ``keys``: zero where it found none."""
    counts = dict.fromkeys(keys, 0)
    for *key, count in connection.execute(statement):
        counts[key[0] if len(key) == 1 else tuple(key)] = count
    return counts


def _by_status(connection: Connection) -> dict[tuple[Mode, CopyStatus], int]:
    return _counted(
        connection,
        select(OrderCopy.mode, OrderCopy.status, func.count()).group_by(
            OrderCopy.mode, OrderCopy.status
        ),
        [(mode, status) for mode in Mode for status in CopyStatus],
    )


def _history_counts(connection: Connection) -> dict[tuple[Mode, str], int]:
    return _counted(
        connection,
        select(OrderCopyEvent.mode, OrderCopyEvent.kind, func.count())
        .where(OrderCopyEvent.kind.in_(COUNTED))
        .group_by(OrderCopyEvent.kind, OrderCopyEvent.mode),
        [(mode, kind) for mode in Mode for kind in COUNTED],
    )


def _durations(connection: Connection) -> dict[Mode, tuple[list[int], int, float]]:
    """Per mode: how many completed copies took at most each bucket, all of them, the sum."""
    seconds = _seconds(connection)
    columns = [func.count(case((seconds <= bound, 1))) for bound in DURATION_BUCKETS]
    rows = connection.execute(
        select(OrderCopy.mode, func.count(), func.coalesce(func.sum(seconds), 0.0), *columns)
        .where(OrderCopy.completed_at.is_not(None), OrderCopy.started_at.is_not(None))
        .group_by(OrderCopy.mode)
    )
    found: dict[Mode, tuple[list[int], int, float]] = {
        mode: ([0] * len(DURATION_BUCKETS), 0, 0.0) for mode in Mode
    }
    for mode, count, total, *within in rows:
        found[Mode(mode)] = (list(within), count, float(total))
    return found


def _oldest_pending_age(connection: Connection, mode: Mode, now: datetime) -> float:
    """Seconds since the oldest due pending copy was created (not one scheduled for later)."""
    created_at = connection.scalar(
        select(OrderCopy.created_at)
        .where(
            OrderCopy.mode == mode,
            OrderCopy.status == CopyStatus.PENDING,
            or_(OrderCopy.next_attempt_at.is_(None), OrderCopy.next_attempt_at <= now),
        )
        .order_by(OrderCopy.created_at)
        .limit(1)
    )
    return max((now - created_at).total_seconds(), 0.0) if created_at is not None else 0.0


def _renewals_due(connection: Connection, now: datetime) -> dict[Mode, int]:
    return _counted(
        connection,
        select(OrderSubscription.mode, func.count())
        .where(OrderSubscription.status.in_(RENEWING), OrderSubscription.next_run_at <= now)
        .group_by(OrderSubscription.mode),
        Mode,
    )


def _webhooks(connection: Connection, now: datetime) -> tuple[dict[Mode, int], dict[Mode, float]]:
    """Open circuits, and seconds since the oldest event still owed was written, by mode."""
    circuits = _counted(
        connection,
        select(Webhook.mode, func.count())
        .where(Webhook.circuit_state == CircuitState.OPEN)
        .group_by(Webhook.mode),
        Mode,
    )
    oldest = dict.fromkeys(Mode, 0.0)
    for mode, created_at in connection.execute(
        select(WebhookEvent.mode, func.min(WebhookEvent.created_at))
        .where(WebhookEvent.status == EventStatus.PENDING)
        .group_by(WebhookEvent.mode)
    ):
        oldest[Mode(mode)] = max((now - created_at).total_seconds(), 0.0)
    return circuits, oldest


def _by_mode(name: str, documentation: str, values: dict[Mode, Any]) -> GaugeMetricFamily:
    """A gauge with one value per mode."""
    gauge = GaugeMetricFamily(name, documentation, labels=["mode"])
    for mode, value in values.items():
        gauge.add_metric([mode.value], value)
    return gauge


def _webhook_families(circuits: dict[Mode, int], oldest: dict[Mode, float]) -> Iterator[Metric]:
    yield _by_mode(
        "ordercopy_webhooks_open_circuits",
        "Webhooks whose circuit is open (deliveries stopped until _reset_circuit)",
        circuits,
    )
    yield _by_mode(
        "ordercopy_oldest_undelivered_webhook_event_age_seconds",
        "Seconds since the oldest webhook event not yet delivered was written (0: none)",
        oldest,
    )


class CopiesCollector(Collector):
    """Reads every value from the database when collected (one short read-only transaction)."""

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        with db.engine().connect() as connection:
            if connection.dialect.name == "postgresql":
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql(
                        f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"
                    )
                    connection.exec_driver_sql("SET TRANSACTION READ ONLY")
                by_status = _by_status(connection)
                history = _history_counts(connection)
                durations = _durations(connection)
                oldest = {mode: _oldest_pending_age(connection, mode, now) for mode in Mode}
                renewals = _renewals_due(connection, now)
                webhooks = _webhooks(connection, now)
        yield from _families(by_status, history, durations, oldest, renewals)
        yield from _webhook_families(*webhooks)


def _families(
    by_status: dict[tuple[Mode, CopyStatus], int],
    history: dict[tuple[Mode, str], int],
    durations: dict[Mode, tuple[list[int], int, float]],
    oldest: dict[Mode, float],
    renewals: dict[Mode, int],
) -> Iterator[Metric]:
    copies = GaugeMetricFamily(
        "ordercopy_copies", "Order copies by mode and status, now", labels=["mode", "status"]
    )
    for (mode, status), count in by_status.items():
        copies.add_metric([mode.value, status.value], count)
    yield copies
    help_texts = {
        "created": "Order copies created (from each copy's history)",
        "completed": "Copy runs that completed (from each copy's history)",
        "failed": "Copy runs that failed, each retry's failure counted again (history)",
    }
    for kind in COUNTED:
        counter = CounterMetricFamily(f"ordercopy_copies_{kind}", help_texts[kind], labels=["mode"])
        for mode in Mode:
            counter.add_metric([mode.value], history[mode, kind])
        yield counter
    histogram = HistogramMetricFamily(
        "ordercopy_copy_duration_seconds",
        "Completed copies: seconds from first claim to completion (retries' waits included)",
        labels=["mode"],
    )
    for mode, (within, count, total) in durations.items():
        buckets: list[tuple[str, Any]] = [
            (_bound(bound), cumulative)
            for bound, cumulative in zip(DURATION_BUCKETS, within, strict=True)
        ]
        histogram.add_metric([mode.value], [*buckets, ("+Inf", count)], total)
    yield histogram
    yield _by_mode(
        "ordercopy_oldest_pending_copy_age_seconds",
        "Seconds since the oldest due pending copy was created (0: none waiting)",
        oldest,
    )
    yield _by_mode(
        "ordercopy_renewals_due",
        "Active or running subscriptions whose next run is due (next_run_at <= now)",
        renewals,
    )


def _bound(bound: float) -> str:
    return repr(float(bound))


def router() -> APIRouter:
    """``GET /metrics`` over a registry of its own (this process's own metrics would
    differ from one web process to the next)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CopiesCollector())
    routes = APIRouter()

    @routes.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        try:
            body = generate_latest(registry)
        except SQLAlchemyError as error:  # the database is away or too slow: a failed scrape
            # Driver text names hosts and ports: the log gets it, the scraper does not.
            reason = (str(error).splitlines() or [type(error).__name__])[0]
            log.warning("metrics_unavailable", error=reason)
            return Response("database unavailable\n", 503, media_type="text/plain")
        return Response(body, media_type=CONTENT_TYPE)

    return routes
