"""The overview's numbers: copies by status, throughput over time, oldest pending copy,
renewals due, workers seen recently. Each is one indexed query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, cast, func, select, type_coerce
from sqlalchemy.orm import Session

from copying.copies import counts
from copying.subscriptions.subscription_states import RENEWING
from models import CopyStatus, Mode, OrderCopy, OrderSubscription, WorkerHeartbeat
from models.metric_counts import CountName

#: A worker is "seen recently" if it beat within this (it beats every few seconds).
SEEN_WITHIN = timedelta(seconds=30)
SERIES = ("created", "completed", "failed")
COLUMNS = {
    "created": OrderCopy.created_at,
    "completed": OrderCopy.completed_at,
    "failed": OrderCopy.failed_at,
}


@dataclass
class Series:
    """Counts per bucket (oldest first), one list per kind, and when the first bucket starts."""

    start: datetime
    step: timedelta
    counts: dict[str, list[int]]

    @property
    def total(self) -> dict[str, int]:
        return {kind: sum(values) for kind, values in self.counts.items()}


def _epoch_bucket(session: Session, column: Any, seconds: int) -> ColumnElement[int]:
    if session.get_bind().dialect.name == "sqlite":
        epoch: ColumnElement[Any] = cast(func.strftime("%s", column), Integer)
        return type_coerce(epoch / seconds, Integer)
    return type_coerce(
        func.floor(type_coerce(func.extract("epoch", column), Float) / seconds), Integer
    )


def _counts(
    session: Session, mode: Mode, first: int, buckets: int, seconds: int, until: int | None
) -> dict[str, list[int]]:
    """Copies per kind in buckets ``first`` … ``first + buckets - 1`` (bucket n: the
    ``seconds`` from n * ``seconds`` since the epoch), up to bucket ``until`` if given."""
    since = datetime.fromtimestamp(first * seconds, tz=UTC)
    counts = {kind: [0] * buckets for kind in SERIES}
    for kind, column in COLUMNS.items():
        bucket = _epoch_bucket(session, column, seconds)
        where = [OrderCopy.mode == mode, column >= since]
        if until is not None:
            where.append(column < datetime.fromtimestamp(until * seconds, tz=UTC))
        rows = session.execute(select(bucket, func.count()).where(*where).group_by(bucket))
        for index, count in rows:
            position = int(index) - first
            if 0 <= position < buckets:
                counts[kind][position] = count
    return counts


#: The past buckets of the hourly chart, by database and mode: (current hour, counts).
_past: dict[tuple[str, Mode], tuple[int, dict[str, list[int]]]] = {}


def series(session: Session, mode: Mode, now: datetime, step: timedelta, buckets: int) -> Series:
    """Copies created, completed and failed per ``step`` over the last ``buckets`` steps
    (by the copies' own timestamps: a copy retried and completed counts as completed).

    Hourly: the hours gone by are counted once per hour and kept (seven days of copies
    are too many rows to count on every refresh); the current hour is counted each time.
    A copy whose failure in a past hour is retried leaves that hour's count as it was
    until the next hour begins."""
    seconds = int(step.total_seconds())
    last = int(now.timestamp()) // seconds
    first = last - buckets + 1
    start = datetime.fromtimestamp(first * seconds, tz=UTC)
    if step < timedelta(hours=1):
        return Series(start, step, _counts(session, mode, first, buckets, seconds, None))
    key = (str(session.get_bind().engine.url), mode)
    cached = _past.get(key)
    if cached is None or cached[0] != last:
        cached = (last, _counts(session, mode, first, buckets - 1, seconds, last))
        _past[key] = cached
    current = _counts(session, mode, last, 1, seconds, None)
    counts = {kind: [*cached[1][kind], *current[kind]] for kind in SERIES}
    return Series(start, step, counts)


@dataclass
class Overview:
    by_status: dict[str, int]
    oldest_pending_at: datetime | None
    oldest_pending_age: float
    renewals_next_hour: int
    renewals_next_day: int
    workers: list[WorkerHeartbeat]
    minutes: Series
    hours: Series


def overview(session: Session, mode: Mode, now: datetime) -> Overview:
    """Everything the overview page shows for ``mode``. Read-only."""
    # The counts /metrics reads: kept by triggers on PostgreSQL, not counted row by row.
    counted = counts.of(counts.current(session.connection()), CountName.COPIES, CopyStatus)
    by_status = {str(status): counted[(mode, status)] for status in CopyStatus}
    oldest = counts.oldest_pending(session.connection(), mode, now)
    due = select(func.count()).where(
        OrderSubscription.mode == mode, OrderSubscription.status.in_(RENEWING)
    )
    workers = session.scalars(
        select(WorkerHeartbeat)
        .where(WorkerHeartbeat.seen_at >= now - SEEN_WITHIN)
        .order_by(WorkerHeartbeat.hostname)
    )
    return Overview(
        by_status=by_status,
        oldest_pending_at=oldest,
        oldest_pending_age=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
        renewals_next_hour=session.scalar(
            due.where(OrderSubscription.next_run_at <= now + timedelta(hours=1))
        )
        or 0,
        renewals_next_day=session.scalar(
            due.where(OrderSubscription.next_run_at <= now + timedelta(days=1))
        )
        or 0,
        workers=list(workers),
        minutes=series(session, mode, now, timedelta(minutes=1), 60),
        hours=series(session, mode, now, timedelta(hours=1), 24 * 7),
    )
