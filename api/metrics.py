"""``GET /metrics``: the copies as Prometheus sees them, read from the database at scrape time.

Every value is read from the database when Prometheus asks, so any number of web
processes serve the same numbers and nothing is lost when one restarts. No scrape
counts a whole table: the counts of copies and of their history are kept as they
change, in the transaction that changes them (``models/metric_counts.py``,
``copying/copies/counts.py``; the embedded SQLite counts its tables), and the rest are
index ranges over what is waiting (pending copies, renewals due, undelivered events):

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
from itertools import accumulate
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
from sqlalchemy import Connection, Executable, func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from copying.circuits import CircuitModel
from copying.copies import counts
from copying.copies.counts import (
    DURATION_BUCKETS,
    INFINITY,
    Counts,
    bucket_label,
    of,
)
from copying.copies.history import EventKind
from copying.subscriptions.subscription_states import RENEWING
from models import (
    CircuitState,
    CopyStatus,
    EventStatus,
    ExternalGateway,
    Mode,
    OrderSubscription,
    Webhook,
    WebhookEvent,
    db,
    utcnow,
)
from models.metric_counts import CountName

log = structlog.get_logger("ordercopy.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The history's kinds counted, each by its own counter (``ordercopy_copies_<kind>_total``).
COUNTED = (EventKind.CREATED, EventKind.COMPLETED, EventKind.FAILED)
#: A scrape that takes longer than this gives up (PostgreSQL); Prometheus sees a failed scrape.
STATEMENT_TIMEOUT_MS = 5000


def _counted(connection: Connection, statement: Executable, keys: Iterable[Any]) -> dict[Any, int]:
    """``statement``'s ``(key, ..., count)`` rows over ``keys``: zero where it found none."""
    counts = dict.fromkeys(keys, 0)
    for *key, count in connection.execute(statement):
        counts[key[0] if len(key) == 1 else tuple(key)] = count
    return counts


def _by_status(counts: Counts) -> dict[tuple[Mode, CopyStatus], int]:
    by_label = of(counts, CountName.COPIES, list(CopyStatus))
    return {(mode, CopyStatus(status)): count for (mode, status), count in by_label.items()}


def _history_counts(counts: Counts) -> dict[tuple[Mode, str], int]:
    return of(counts, CountName.COPY_EVENTS, COUNTED)


def _durations(counts: Counts) -> dict[Mode, tuple[list[int], int, float]]:
    """Per mode: how many completed copies took at most each bucket, all of them, the sum."""
    labels = [bucket_label(bound) for bound in DURATION_BUCKETS]
    within = of(counts, CountName.COPY_DURATIONS, [*labels, INFINITY])
    found: dict[Mode, tuple[list[int], int, float]] = {}
    for mode in Mode:
        cumulative = list(accumulate(within[mode, label] for label in labels))
        total = (cumulative[-1] if cumulative else 0) + within[mode, INFINITY]
        micros = counts.get((mode, CountName.COPY_DURATION_MICROS, ""), 0)
        found[mode] = (cumulative, total, micros / 1_000_000)
    return found


def _oldest_pending_age(connection: Connection, mode: Mode, now: datetime) -> float:
    """Seconds since the oldest due pending copy was created (not one scheduled for later)."""
    created_at = counts.oldest_pending(connection, mode, now)
    return max((now - created_at).total_seconds(), 0.0) if created_at is not None else 0.0


def _renewals_due(connection: Connection, now: datetime) -> dict[Mode, int]:
    return _counted(
        connection,
        select(OrderSubscription.mode, func.count())
        .where(OrderSubscription.status.in_(RENEWING), OrderSubscription.next_run_at <= now)
        .group_by(OrderSubscription.mode),
        Mode,
    )


def _open_circuits(connection: Connection, model: CircuitModel) -> dict[Mode, int]:
    """Rows of ``model`` (webhooks, external gateways) whose circuit is open, by mode."""
    return _counted(
        connection,
        select(model.mode, func.count())
        .where(model.circuit_state == CircuitState.OPEN)
        .group_by(model.mode),
        Mode,
    )


def _webhooks(connection: Connection, now: datetime) -> tuple[dict[Mode, int], dict[Mode, float]]:
    """Open circuits, and seconds since the oldest event still owed was written, by mode."""
    circuits = _open_circuits(connection, Webhook)
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
                counted = counts.current(connection)
                by_status = _by_status(counted)
                history = _history_counts(counted)
                durations = _durations(counted)
                oldest = {mode: _oldest_pending_age(connection, mode, now) for mode in Mode}
                renewals = _renewals_due(connection, now)
                webhooks = _webhooks(connection, now)
                gateways = _open_circuits(connection, ExternalGateway)
        yield from _families(by_status, history, durations, oldest, renewals)
        yield from _webhook_families(*webhooks)
        yield _by_mode(
            "ordercopy_external_gateways_open_circuits",
            "External payment gateways whose circuit is open (their calls fail at once until"
            " _reset_circuit)",
            gateways,
        )


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
            (bucket_label(bound), cumulative)
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
