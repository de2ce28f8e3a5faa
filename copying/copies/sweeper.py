"""The sweeper: rings lost doorbells and rescues copies whose run died.

Called by a beat tick every ~15 s. It never runs a copy itself: it only
re-announces ids (claiming decides who runs) and fails copies whose runs are
used up, so it is safe to run twice at once.

It cannot tell a lost doorbell from one still queued behind a backlog, so it
rings a ``pending`` copy again after ``redispatch_after``, then after twice as
long each time, up to ``redispatch_max``: a copy waiting W seconds behind a
backlog adds about log2(W / redispatch_after) messages to it, not
W / redispatch_after (which, once the queue's wait passed redispatch_after,
grew the backlog faster than workers drained it). A doorbell that was really
lost is rung again within about as long as its copy had already waited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import ColumnElement, CursorResult, and_, delete, or_, select, update
from sqlalchemy.orm import Session

from copying.copies.dispatch import publish_after_commit
from copying.errors import LeaseLostError
from copying.runs import give_up
from models import CopyStatus, IdempotencyKey, OrderCopy
from models.order_copies import status_is

log = structlog.get_logger("ordercopy.sweeper")


@dataclass
class SweepResult:
    republished: list[str] = field(default_factory=list)
    rescued: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)


def sweep(
    session: Session,
    now: datetime,
    *,
    redispatch_after: timedelta,
    redispatch_max: timedelta,
    max_claims: int,
    batch_size: int,
) -> SweepResult:
    """Re-announce stale ``pending`` copies and expired ``in_progress`` ones; fail the
    expired ones whose runs are used up. Rows locked by others are skipped. Does not commit.
    """
    result = SweepResult()
    stale = now - redispatch_after
    result.republished = list(
        session.scalars(
            select(OrderCopy.id)
            .where(
                status_is(CopyStatus.PENDING),  # the pending_dispatched_at partial index
                _rung_long_ago(now, redispatch_after, redispatch_max),
                or_(OrderCopy.next_attempt_at.is_(None), OrderCopy.next_attempt_at <= now),
            )
            .order_by(OrderCopy.created_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
    )
    expired = session.scalars(
        select(OrderCopy)
        .where(
            status_is(CopyStatus.IN_PROGRESS),  # the leased_lease_expires_at partial index
            OrderCopy.lease_expires_at <= now,
            # one doorbell per expiry, and again if that one was lost too
            or_(
                OrderCopy.dispatched_at.is_(None),
                OrderCopy.dispatched_at < OrderCopy.lease_expires_at,
                OrderCopy.dispatched_at < stale,
            ),
        )
        .order_by(OrderCopy.lease_expires_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    ).all()
    for copy in expired:
        if copy.claims >= max_claims:
            try:
                with session.begin_nested():
                    give_up(
                        session,
                        copy,
                        now,
                        f"gave up after {copy.claims} attempts: the "
                        f"last run stopped answering (lease expired at "
                        f"{copy.lease_expires_at:%Y-%m-%dT%H:%M:%SZ})",
                    )
                result.gave_up.append(copy.id)
            except LeaseLostError:
                pass
        else:
            result.rescued.append(copy.id)
    announce = result.republished + result.rescued
    if announce:
        session.execute(
            update(OrderCopy)
            .where(OrderCopy.id.in_(announce))
            .values(dispatched_at=now, dispatches=OrderCopy.dispatches + 1)
            .execution_options(synchronize_session=False)
        )
        publish_after_commit(session, announce)
    if announce or result.gave_up:
        log.info(
            "sweep",
            republished=len(result.republished),
            rescued=len(result.rescued),
            gave_up=len(result.gave_up),
        )
    return result


def purge_idempotency_keys(session: Session, older_than: datetime, *, batch_size: int) -> int:
    """Delete up to ``batch_size`` remembered responses created before ``older_than``
    (oldest first; rows locked by others are skipped); how many went. Does not commit."""
    expired = (
        select(IdempotencyKey.id)
        .where(IdempotencyKey.created_at < older_than)  # ix_idempotency_keys_created_at
        .order_by(IdempotencyKey.created_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = session.execute(
        delete(IdempotencyKey)
        .where(IdempotencyKey.id.in_(expired))
        .execution_options(synchronize_session=False)
    )
    purged = int(cast("CursorResult[Any]", result).rowcount)
    if purged:
        log.info("idempotency_keys_purged", count=purged)
    return purged


def _rung_long_ago(
    now: datetime, redispatch_after: timedelta, redispatch_max: timedelta
) -> ColumnElement[bool]:
    """Never rung, or rung longer ago than the wait its ``dispatches`` count earned:
    ``redispatch_after`` * 2**dispatches, at most ``redispatch_max``."""
    rungs: list[ColumnElement[bool]] = [OrderCopy.dispatched_at.is_(None)]
    for doubling in range(32):
        wait = redispatch_after * 2**doubling
        if wait >= redispatch_max:
            rungs.append(
                and_(
                    OrderCopy.dispatches >= doubling,
                    OrderCopy.dispatched_at < now - redispatch_max,
                )
            )
            break
        rungs.append(and_(OrderCopy.dispatches == doubling, OrderCopy.dispatched_at < now - wait))
    return or_(*rungs)
