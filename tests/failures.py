"""Failed copies to select and retry, made by real runs (shared by the bulk and CLI tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from copying.orders.gateways import Gateways
from copying.runs import Outcome
from models import Mode
from tests.copying.clock import T0, FixedClock
from tests.factories import Line, create_copy, make_order, make_shop, make_sku, make_subscription
from tests.runs import execute_one

HOUR = timedelta(hours=1)


def fail_copy(
    sessions: sessionmaker[Session],
    gateways: Gateways,
    source_id: str,
    at: datetime,
    *,
    mode: Mode = Mode.TEST,
    **options: object,
) -> str:
    """A copy of ``source_id`` (whose SKU is unusable) executed to ``failed`` at ``at``."""
    copy = create_copy(sessions, source_id, mode=mode, now=at, **options)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=FixedClock(at)) == (
        Outcome.FAILED
    )
    return copy.id


@dataclass
class Failures:
    """Failed test copies a (T0), b (T0+1h), c (T0+2h); others that must never be selected."""

    a: str  # discontinued SKU, reference_origin "app"
    b: str  # out of stock, reference_origin "ops"
    c: str  # discontinued SKU, a renewal of ``subscription_id``
    live: str  # failed, but in live mode
    completed: str
    pending: str
    subscription_id: str


def make_failures(sessions: sessionmaker[Session], gateways: Gateways) -> Failures:
    with sessions.begin() as s:
        gone = make_order(s, [Line(make_sku(s, "GONE-TEE", discontinued=True), 1)])
        short = make_order(s, [Line(make_sku(s, "SHORT-TEE", stock=0), 2)])
        live = make_order(
            s, [Line(make_sku(s, "GONE-TEE", discontinued=True, mode=Mode.LIVE))], mode=Mode.LIVE
        )
        good = make_shop(s).source
        # No retries by the failure policy: the failed renewal stays failed.
        subscription = make_subscription(
            s, gone, starts_at=T0, failure_policy={"retry_after_seconds": []}
        )
    return Failures(
        a=fail_copy(sessions, gateways, gone.id, T0, reference_origin="app"),
        b=fail_copy(sessions, gateways, short.id, T0 + HOUR, reference_origin="ops"),
        c=fail_copy(
            sessions, gateways, gone.id, T0 + 2 * HOUR, order_subscription_id=subscription.id
        ),
        live=fail_copy(sessions, gateways, live.id, T0 + HOUR, mode=Mode.LIVE),
        completed=_completed(sessions, gateways, good.id),
        pending=create_copy(sessions, gone.id, now=T0).id,
        subscription_id=subscription.id,
    )


def _completed(sessions: sessionmaker[Session], gateways: Gateways, source_id: str) -> str:
    copy = create_copy(sessions, source_id, now=T0)
    assert execute_one(sessions, copy.id, gateways=gateways, clock=FixedClock(T0)) == (
        Outcome.COMPLETED
    )
    return copy.id
