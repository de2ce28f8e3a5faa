"""Retrying failed copies in bulk (and aborting pending ones): select them by criteria,
then change each on its own.

Each retry is its own unit of work (commit, then publish), and ``lifecycle.retry``
is a compare-and-set ``failed → pending``: two bulk retries over the same copies
at once retry each copy once — the loser of a race finds the copy no longer
failed and counts it as skipped. One copy's unexpected exception is recorded and
the run goes on; what was committed stays committed.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import ColumnElement, Select, Text, cast, or_, select
from sqlalchemy.orm import Session, sessionmaker

from copying.copies import lifecycle
from copying.copies.dispatch import Publish, unit_of_work
from copying.errors import CopyStateError, NotFoundError, one_line
from models import CopyStatus, Mode, OrderCopy

log = structlog.get_logger("ordercopy.bulk")


@dataclass(frozen=True)
class RetryCriteria:
    """Which failed copies to retry; every criterion given must hold (AND).

    ``since`` is inclusive and ``until`` exclusive, both on ``failed_at``.
    ``error_contains`` matches the keys and messages of ``errors_log``, ignoring
    case (ASCII case only on SQLite, whose ``lower()`` knows no other).
    """

    ids: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    reference_origin: str | None = None
    subscription_id: str | None = None
    error_contains: str | None = None
    limit: int | None = None


def failed_copies(mode: Mode, criteria: RetryCriteria) -> Select[OrderCopy]:
    """The failed copies of ``mode`` matching ``criteria``, oldest failure first."""
    query = select(OrderCopy).where(OrderCopy.mode == mode, OrderCopy.status == CopyStatus.FAILED)
    if criteria.ids:
        query = query.where(OrderCopy.id.in_(criteria.ids))
    if criteria.since is not None:
        query = query.where(OrderCopy.failed_at >= criteria.since)
    if criteria.until is not None:
        query = query.where(OrderCopy.failed_at < criteria.until)
    if criteria.reference_origin is not None:
        query = query.where(OrderCopy.reference_origin == criteria.reference_origin)
    if criteria.subscription_id is not None:
        query = query.where(OrderCopy.order_subscription_id == criteria.subscription_id)
    if criteria.error_contains:
        query = query.where(errors_contain(criteria.error_contains))
    query = query.order_by(OrderCopy.failed_at, OrderCopy.id)
    if criteria.limit is not None:
        query = query.limit(criteria.limit)
    return query


def errors_contain(text: str) -> ColumnElement[bool]:
    """``errors_log``, read as JSON text, contains ``text`` (any case).

    The JSON text escapes quotes and backslashes, so the needle is escaped the
    same way. Non-ASCII is raw in PostgreSQL's ``jsonb::text`` and ``\\uXXXX``
    in the JSON SQLite stores: both spellings are tried.
    """
    as_text = cast(OrderCopy.errors_log, Text)
    spellings = dict.fromkeys(
        json.dumps(text, ensure_ascii=ascii_only)[1:-1] for ascii_only in (False, True)
    )
    return or_(*(as_text.icontains(spelling, autoescape=True) for spelling in spellings))


def select_failed(session: Session, mode: Mode, criteria: RetryCriteria) -> list[str]:
    """The ids of the failed copies matching ``criteria``, oldest failure first. Read-only."""
    ids = failed_copies(mode, criteria).with_only_columns(OrderCopy.id)
    return list(session.scalars(ids))


class RetryOutcome(enum.StrEnum):
    RETRIED = "retried"
    SKIPPED = "skipped"  # no longer failed (another retry won, or it is gone)
    ERROR = "error"  # an unexpected exception: a bug or a lost database


@dataclass
class RetrySummary:
    retried: list[str] = field(default_factory=list)
    #: copy id → why it was not retried (its status now, or that it is gone)
    skipped: dict[str, str] = field(default_factory=dict)
    #: copy id → the unexpected exception, named (``OperationalError: ...``)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.retried) + len(self.skipped) + len(self.errors)


def named(error: Exception) -> str:
    """``Type: first line of the message``, bounded (a database error's SQL follows on
    later lines)."""
    return f"{type(error).__name__}: {one_line(error)}"


ProgressCallback = Callable[[str, RetryOutcome], None]


def retry_each(
    sessions: sessionmaker[Session],
    ids: Sequence[str],
    mode: Mode,
    *,
    by: str,
    publish: Publish,
    progress_callback: ProgressCallback | None = None,
) -> RetrySummary:
    """Retry each copy in its own unit of work, announced after its commit.

    A copy no longer failed is skipped; an unexpected exception is recorded
    against its copy and the run goes on. ``progress_callback(id, outcome)`` is
    called after each copy. Commits (one transaction per copy).
    """
    summary = _each(sessions, ids, mode, lifecycle.retry, by, publish, progress_callback)
    log.info(
        "bulk_retry",
        by=by,
        retried=len(summary.retried),
        skipped=len(summary.skipped),
        errors=len(summary.errors),
    )
    return summary


def abort_each(
    sessions: sessionmaker[Session],
    ids: Sequence[str],
    mode: Mode,
    *,
    by: str,
    publish: Publish,
    progress_callback: ProgressCallback | None = None,
) -> RetrySummary:
    """Abort each pending copy in its own unit of work, as :func:`retry_each` retries:
    the summary's ``retried`` lists the copies aborted. Commits (one transaction per copy).
    """
    summary = _each(sessions, ids, mode, lifecycle.abort, by, publish, progress_callback)
    log.info(
        "bulk_abort",
        by=by,
        aborted=len(summary.retried),
        skipped=len(summary.skipped),
        errors=len(summary.errors),
    )
    return summary


def _each(
    sessions: sessionmaker[Session],
    ids: Sequence[str],
    mode: Mode,
    change: Callable[..., OrderCopy],
    by: str,
    publish: Publish,
    progress_callback: ProgressCallback | None,
) -> RetrySummary:
    summary = RetrySummary()
    for copy_id in ids:
        outcome = RetryOutcome.RETRIED
        try:
            with unit_of_work(sessions, publish) as session:
                change(session, copy_id, mode, by=by)
            summary.retried.append(copy_id)
        except CopyStateError as error:
            outcome = RetryOutcome.SKIPPED
            summary.skipped[copy_id] = f"now {error.status}"
        except NotFoundError:
            outcome = RetryOutcome.SKIPPED
            summary.skipped[copy_id] = "gone"
        except Exception as error:  # one copy's bug must not stop the others' changes
            outcome = RetryOutcome.ERROR
            summary.errors[copy_id] = named(error)
            log.exception("bulk_change_error", order_copy_id=copy_id, by=by, change=change.__name__)
        if progress_callback is not None:
            progress_callback(copy_id, outcome)
    return summary
