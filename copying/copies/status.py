"""How the copies of one mode are doing right now: the numbers ``ordercopy status`` shows.

Everything is read at one ``now`` the caller passes, so a report is
reproducible (and testable to the unit). Read-only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from models import CopyStatus, CopyStep, Mode, OrderCopy

TOP_ERRORS = 10
IN_PROGRESS_SHOWN = 20
ERRORS_WINDOW = timedelta(hours=24)
THROUGHPUT_WINDOWS = (timedelta(minutes=5), timedelta(minutes=60))


@dataclass(frozen=True)
class OldestPending:
    """The pending copy that has waited longest among those due (not scheduled for later)."""

    id: str
    created_at: datetime
    age_seconds: float


@dataclass(frozen=True)
class InProgress:
    id: str
    attempt: int
    step: CopyStep | None
    started_at: datetime | None
    lease_expires_at: datetime | None
    #: the run stopped renewing its lease: the sweeper will hand the copy to a new run
    lease_expired: bool


@dataclass(frozen=True)
class ErrorCount:
    key: str
    message: str
    copies: int


@dataclass(frozen=True)
class Throughput:
    minutes: int
    completed: int
    failed: int
    completed_per_minute: float
    failed_per_minute: float


@dataclass(frozen=True)
class StatusReport:
    mode: Mode
    now: datetime
    #: every status, zeros included
    counts: dict[CopyStatus, int]
    #: pending copies waiting for a later time (a renewal's failure policy), in ``counts`` too
    scheduled: int
    oldest_pending: OldestPending | None
    #: the in-progress copies whose lease ends first (expired ones on top), at most 20
    in_progress: list[InProgress]
    #: the most frequent messages in the errors_log of copies failed in the last 24 h
    top_errors: list[ErrorCount]
    #: the last 5 and 60 minutes
    throughput: list[Throughput]


def status_report(session: Session, mode: Mode, *, now: datetime) -> StatusReport:
    """The report for ``mode`` as of ``now``. Read-only."""
    counts, scheduled = _counts(session, mode, now)
    return StatusReport(
        mode=mode,
        now=now,
        counts=counts,
        scheduled=scheduled,
        oldest_pending=_oldest_pending(session, mode, now),
        in_progress=_in_progress(session, mode, now),
        top_errors=_top_errors(session, mode, now),
        throughput=_throughput(session, mode, now),
    )


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(OrderCopy.next_attempt_at.is_(None), OrderCopy.next_attempt_at <= now)


def _counts(session: Session, mode: Mode, now: datetime) -> tuple[dict[CopyStatus, int], int]:
    counts = dict.fromkeys(CopyStatus, 0)
    scheduled = 0
    rows = session.execute(
        select(
            OrderCopy.status,
            func.count(),
            func.count(case((and_(OrderCopy.status == CopyStatus.PENDING, ~_due(now)), 1))),
        )
        .where(OrderCopy.mode == mode)
        .group_by(OrderCopy.status)
    )
    for status, count, not_due in rows:
        counts[status] = count
        scheduled += not_due
    return counts, scheduled


def _oldest_pending(session: Session, mode: Mode, now: datetime) -> OldestPending | None:
    row = session.execute(
        select(OrderCopy.id, OrderCopy.created_at)
        .where(OrderCopy.mode == mode, OrderCopy.status == CopyStatus.PENDING, _due(now))
        .order_by(OrderCopy.created_at, OrderCopy.id)
        .limit(1)
    ).one_or_none()
    if row is None:
        return None
    copy_id, created_at = row
    return OldestPending(copy_id, created_at, (now - created_at).total_seconds())


def _in_progress(session: Session, mode: Mode, now: datetime) -> list[InProgress]:
    rows = session.execute(
        select(
            OrderCopy.id,
            OrderCopy.attempt,
            OrderCopy.step,
            OrderCopy.started_at,
            OrderCopy.lease_expires_at,
        )
        .where(OrderCopy.mode == mode, OrderCopy.status == CopyStatus.IN_PROGRESS)
        .order_by(OrderCopy.lease_expires_at, OrderCopy.id)
        .limit(IN_PROGRESS_SHOWN)
    )
    return [
        # Expired as the claim sees it: a lease strictly before now can be taken over.
        InProgress(copy_id, attempt, step, started, lease, lease is not None and lease <= now)
        for copy_id, attempt, step, started, lease in rows
    ]


def _top_errors(session: Session, mode: Mode, now: datetime) -> list[ErrorCount]:
    # Flattened here rather than in SQL: jsonb_each/json_each differ by backend, and a
    # day of failures is a small read of one column.
    logs = session.scalars(
        select(OrderCopy.errors_log).where(
            OrderCopy.mode == mode,
            OrderCopy.status == CopyStatus.FAILED,
            OrderCopy.failed_at > now - ERRORS_WINDOW,
            OrderCopy.failed_at <= now,
        )
    )
    seen: Counter[tuple[str, str]] = Counter()
    for errors_log in logs:
        # A message said twice by one copy counts that copy once.
        seen.update(
            {(key, message) for key, messages in errors_log.items() for message in messages}
        )
    ranked = sorted(seen.items(), key=lambda item: (-item[1], item[0]))
    return [ErrorCount(key, message, copies) for (key, message), copies in ranked[:TOP_ERRORS]]


def _throughput(session: Session, mode: Mode, now: datetime) -> list[Throughput]:
    def within(
        column: InstrumentedAttribute[datetime | None], window: timedelta
    ) -> ColumnElement[int]:
        return func.count(case((and_(column > now - window, column <= now), 1)))

    earliest = now - max(THROUGHPUT_WINDOWS)
    columns = [
        within(column, window)
        for window in THROUGHPUT_WINDOWS
        for column in (OrderCopy.completed_at, OrderCopy.failed_at)
    ]
    row = session.execute(
        select(*columns).where(
            OrderCopy.mode == mode,
            or_(OrderCopy.completed_at > earliest, OrderCopy.failed_at > earliest),
        )
    ).one()
    result = []
    for index, window in enumerate(THROUGHPUT_WINDOWS):
        completed, failed = row[2 * index], row[2 * index + 1]
        minutes = int(window.total_seconds() // 60)
        result.append(Throughput(minutes, completed, failed, completed / minutes, failed / minutes))
    return result
