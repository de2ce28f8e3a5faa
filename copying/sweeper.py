"""The sweeper: rings lost doorbells and rescues copies whose run died.

Called by a beat tick every ~15 s. It never runs a copy itself: it only
re-announces ids (claiming decides who runs) and fails copies whose runs are
used up, so it is safe to run twice at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from copying.dispatch import publish_after_commit
from copying.engine import give_up
from copying.errors import LeaseLostError
from models import CopyStatus, OrderCopy

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
                OrderCopy.status == CopyStatus.PENDING,
                or_(OrderCopy.dispatched_at.is_(None), OrderCopy.dispatched_at < stale),
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
            OrderCopy.status == CopyStatus.IN_PROGRESS,
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
            .values(dispatched_at=now)
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
