"""The order copy state machine: the only code that assigns a copy's status.

::

    aborted ◄─abort─ pending ─claim─► in_progress ─finish─► completed
                       ▲                 │  ▲
                       │                 │  └─ re-claim once the lease expired (a crashed run)
                       └──── retry ──── failed ◄┘

Every change is one compare-and-set ``UPDATE … WHERE status IN (…)``, so two
workers, a sweeper and an API request can race on a row and exactly one wins.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Integer,
    Row,
    Select,
    String,
    Table,
    Update,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from copying.copies.history import EVENTS, EventKind
from copying.copies.options import CopyOptions
from copying.webhooks import events as webhook_events
from copying.webhooks.topics import START, of_copy
from models import CopyStatus, Mode, OrderCopy, new_public_id
from models.base import UTCDateTime
from models.dialects import json_value
from models.order_copies import ASKED, RECURRING, status_is

#: The table, for the run's own statements: Core, not ORM-enabled, as they update rows
#: no session holds and read back plain columns (half the CPU of the ORM's path).
COPIES: Table = OrderCopy.__table__  # type: ignore[assignment]

COPY_TRANSITIONS: dict[CopyStatus, frozenset[CopyStatus]] = {
    CopyStatus.PENDING: frozenset({CopyStatus.IN_PROGRESS, CopyStatus.ABORTED}),
    CopyStatus.IN_PROGRESS: frozenset(
        {CopyStatus.IN_PROGRESS, CopyStatus.COMPLETED, CopyStatus.FAILED}
    ),
    CopyStatus.FAILED: frozenset({CopyStatus.PENDING}),
    CopyStatus.COMPLETED: frozenset(),
    CopyStatus.ABORTED: frozenset(),
}


def transition(
    session: Session,
    copy_id: str,
    to: CopyStatus,
    *,
    sources: frozenset[CopyStatus],
    where: tuple[ColumnElement[bool], ...] = (),
    **values: Any,
) -> OrderCopy | None:
    """Move the copy from one of ``sources`` to ``to``; None when it was not in one.

    Returns the updated row. Does not commit.
    """
    moved = transition_many(session, [copy_id], to, sources=sources, where=where, **values)
    return moved[0] if moved else None


def transition_many(
    session: Session,
    copy_ids: Sequence[str],
    to: CopyStatus,
    *,
    sources: frozenset[CopyStatus],
    where: tuple[ColumnElement[bool], ...] = (),
    **values: Any,
) -> list[OrderCopy]:
    """:func:`transition` for many copies in one statement; returns those that moved, in
    the order of ``copy_ids``. Does not commit."""
    _check(sources, to)
    moved = {
        copy.id: copy
        for copy in session.scalars(
            update(OrderCopy)
            .where(OrderCopy.id.in_(copy_ids), OrderCopy.status.in_(sources), *where)
            .values(status=to, **values)
            .returning(OrderCopy)
            .execution_options(populate_existing=True)
        )
    }
    return [moved[copy_id] for copy_id in dict.fromkeys(copy_ids) if copy_id in moved]


#: The columns a new copy may be given (:func:`new_row`); the rest start the same for all.
GIVEN_COLUMNS = (
    "order_subscription_id",
    "customer_payment_source_id",
    "reference",
    "reference_origin",
    "metadata",
    "idempotency_key",
    "period_key",
)


def new_row(
    *, mode: Mode, source_order_id: str, options: CopyOptions, now: datetime, **given: Any
) -> dict[str, Any]:
    """A new ``pending`` copy's columns, by column name: the one place a copy's row is made
    (a copy created, a renewal queued). ``given``: any of :data:`GIVEN_COLUMNS`."""
    unknown = set(given) - set(GIVEN_COLUMNS)
    if unknown:
        raise TypeError(f"not columns a new copy is given: {sorted(unknown)}")
    return {
        "id": new_public_id(),
        "mode": mode,
        "status": CopyStatus.PENDING,
        "source_order_id": source_order_id,
        **dict.fromkeys(GIVEN_COLUMNS),
        "metadata": {},
        **{name: value for name, value in given.items() if value is not None},
        **options.as_columns(),
        "errors_log": {},
        "errors_count": 0,
        "attempt": 0,
        "claims": 0,
        "retries": 0,
        "dispatches": 0,
        "dispatched_at": now,
        "created_at": now,
        "updated_at": now,
    }


#: :func:`new_row`'s columns, in its order.
NEW_ROW_COLUMNS = tuple(
    new_row(
        mode=Mode.TEST,
        source_order_id="",
        options=CopyOptions(),
        now=datetime.min.replace(tzinfo=UTC),
    )
)


def _update_owned(session: Session, copy_id: str, attempt: int, **values: Any) -> bool:
    """Write ``values`` if run ``attempt`` still owns the copy (``in_progress``, same attempt)."""
    updated = session.execute(
        update(COPIES)
        .where(
            COPIES.c.id == copy_id,
            COPIES.c.attempt == attempt,
            COPIES.c.status == CopyStatus.IN_PROGRESS,
        )
        .values(**values)
    )
    return bool(updated.rowcount == 1)  # type: ignore[attr-defined]


def _check(sources: frozenset[CopyStatus], to: CopyStatus) -> None:
    for source in sources:
        if to not in COPY_TRANSITIONS[source]:
            raise ValueError(f"copy status {source} → {to} is not a transition")


def claim(
    session: Session, copy_id: str, now: datetime, lease: timedelta, max_claims: int
) -> Row[Any] | None:
    """Take the copy for a new run (``attempt`` + 1), or None if another run owns it,
    it is finished, it is not due, or its runs are used up. Does not commit."""
    claimed = claim_many(session, [copy_id], now, lease, max_claims)
    return claimed[0] if claimed else None


#: What a claim reads back: what a run needs (``runs.Run.of``) and the claim order.
CLAIMED_COLUMNS = (
    "id",
    "mode",
    "attempt",
    "claims",
    "source_order_id",
    "target_order_id",
    "customer_payment_source_id",
    "order_subscription_id",
    "period_key",
    "retries",
    *CopyOptions.names(),
    "step",
    "errors_log",
    "dispatched_at",
    "updated_at",
)


def _claim_statement(*, ahead: bool) -> Update:
    """The claim, built once (bound values only): a message's claim is the worker's most
    frequent statement, and building it anew cost more CPU than running it."""
    c = COPIES.c
    now = bindparam("now", type_=UTCDateTime())
    max_claims = bindparam("max_claims", type_=Integer())
    due = or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now)
    wanted: ColumnElement[bool] = c.id.in_(bindparam("ids", expanding=True))
    if ahead:
        id_array = bindparam("id_array", type_=postgresql.ARRAY(String()))
        # ``id = ANY(ARRAY(…))``: the ids are found first (an index scan on status and
        # dispatched_at), then taken by primary key; an ``OR id IN (…)`` would scan the table.
        # Pending and not waiting for a time (the partial index ix_order_copies_ready_…):
        # a copy waiting for its retry time is rung by the sweeper when due.
        due_ids = (
            select(c.id)
            .where(
                status_is(CopyStatus.PENDING),
                c.next_attempt_at.is_(None),
                c.claims < max_claims,
                c.id != func.all(id_array),
            )
            .order_by(c.dispatched_at)
            .limit(bindparam("ahead", type_=Integer()))
            .with_for_update(skip_locked=True)
        )
        wanted = c.id == func.any(func.array_cat(id_array, func.array(due_ids.scalar_subquery())))
    # Pending, or in progress with its lease run out, as one CASE: no index can serve it, so
    # the copies are always found by primary key. As ``status IN (…) AND (…)``, the planner
    # took a status index whenever its statistics lagged (a storm's 100,000 new pending
    # copies are unknown to it until the next ANALYZE) and read every pending row per claim.
    claimable = case(
        (c.status == CopyStatus.PENDING, True),
        (c.status == CopyStatus.IN_PROGRESS, c.lease_expires_at <= now),
        else_=False,
    )
    return (
        update(COPIES)
        .where(wanted, claimable, due, c.claims < max_claims)
        .values(
            status=CopyStatus.IN_PROGRESS,
            attempt=c.attempt + 1,
            claims=c.claims + 1,
            started_at=func.coalesce(c.started_at, now),
            lease_expires_at=bindparam("lease_ends", type_=UTCDateTime()),
            next_attempt_at=None,  # the wait, if any, is over
            updated_at=now,
        )
        .returning(*(c[name] for name in CLAIMED_COLUMNS))
    )


def _claim_recorded_statement(*, ahead: bool) -> Select[Any]:
    """PostgreSQL: the claim, its ``claimed`` history events and the ``order_copies.start``
    (a renewal's ``recurring_order_copies.start``) webhook events of the copies it started
    (their first claim since created or retried) in one statement (a data-modifying WITH),
    which then needs no transaction around it."""
    claimed = _claim_statement(ahead=ahead).cte("claimed")
    c = claimed.c
    events = (
        insert(EVENTS)
        .from_select(
            ["order_copy_id", "mode", "attempt", "kind", "data", "created_at", "updated_at"],
            select(
                c.id,
                c.mode,
                c.attempt,
                literal(EventKind.CLAIMED.value),
                func.jsonb_build_object("step", c.step, "claims", c.claims),
                c.updated_at,
                c.updated_at,
            ),
        )
        .cte("events")
    )
    recurring = c.period_key.is_not(None)  # OrderCopy.copy_type, of the claimed rows
    topic = case((recurring, of_copy(START, RECURRING)), else_=START)
    resource_type = case((recurring, RECURRING), else_=ASKED)
    started = webhook_events.inserting(
        claimed, c.id, c.mode, topic, resource_type, c.updated_at, c.claims == 1
    ).cte("started")
    return select(claimed).add_cte(events).add_cte(started)


_check(frozenset({CopyStatus.PENDING, CopyStatus.IN_PROGRESS}), CopyStatus.IN_PROGRESS)
_CLAIM = _claim_statement(ahead=False)
_CLAIM_RECORDED = _claim_recorded_statement(ahead=False)
_CLAIM_RECORDED_AHEAD = _claim_recorded_statement(ahead=True)


def claim_recorded(
    connection: Connection,
    copy_ids: Sequence[str],
    now: datetime,
    lease: timedelta,
    max_claims: int,
    *,
    ahead: int = 0,
) -> list[Row[Any]]:
    """:func:`claim_many` with each claim's ``claimed`` history event, in one statement
    (PostgreSQL): on an autocommit ``connection`` it commits itself, so that the claim of a
    message whose copy another chunk took costs one round trip.

    ``ahead``: also take up to that many other ``pending`` copies not waiting for a time
    (one that waits is rung by the sweeper when due), the longest announced first,
    skipping rows another transaction holds; they come last, oldest first. Their own
    messages then find them taken."""
    statement = _CLAIM_RECORDED_AHEAD if ahead > 0 else _CLAIM_RECORDED
    return _claim(connection, statement, copy_ids, now, lease, max_claims, ahead)


def claim_many(
    session: Session,
    copy_ids: Sequence[str],
    now: datetime,
    lease: timedelta,
    max_claims: int,
) -> list[Row[Any]]:
    """:func:`claim` for many copies in one statement: the rows taken (their
    :data:`CLAIMED_COLUMNS`, as updated), in the order of ``copy_ids``. Does not commit."""
    return _claim(session, _CLAIM, copy_ids, now, lease, max_claims, ahead=0)


def _claim(
    executor: Session | Connection,
    statement: Executable,
    copy_ids: Sequence[str],
    now: datetime,
    lease: timedelta,
    max_claims: int,
    ahead: int,
) -> list[Row[Any]]:
    """Run a claim statement; the named copies first, in the order of ``copy_ids``, then
    the others, oldest announced first."""
    rows = executor.execute(
        statement,
        {
            "ids": list(copy_ids),
            "id_array": list(copy_ids),
            "ahead": ahead,
            "now": now,
            "lease_ends": now + lease,
            "max_claims": max_claims,
        },
    ).all()
    asked = set(copy_ids)
    named = {row.id: row for row in rows if row.id in asked}
    others = sorted((row for row in rows if row.id not in named), key=lambda r: r.dispatched_at)
    return [named[copy_id] for copy_id in dict.fromkeys(copy_ids) if copy_id in named] + others


# --- many runs at once: a chunk's copies, each row with its own values ------------------
# PostgreSQL: one statement each. Each joins its runs to their copies by primary key. The
# status test is written so that no index can serve it (``IS TRUE``): on ``status =
# 'in_progress'`` the planner scanned the status index, which keeps an entry for every row
# version ever in progress until VACUUM: 20,000 entries per statement after 10,000 copies.
# Elsewhere (SQLite, one writer): a statement per run.

_RENEW_MANY = text(
    """UPDATE order_copies AS c SET lease_expires_at = :lease_ends, updated_at = :now
    FROM unnest(CAST(:ids AS text[]), CAST(:attempts AS int[])) AS r(id, attempt)
    WHERE c.id = r.id AND c.attempt = r.attempt AND (c.status = 'in_progress') IS TRUE
    RETURNING c.id"""
)

_LOCK_MANY = text(
    """SELECT c.id FROM order_copies AS c
    JOIN unnest(CAST(:ids AS text[]), CAST(:attempts AS int[])) AS r(id, attempt)
        ON c.id = r.id AND c.attempt = r.attempt
    WHERE (c.status = 'in_progress') IS TRUE
    ORDER BY c.id
    FOR UPDATE OF c"""
)

#: The runs travel as one JSON document (their errors are JSON themselves).
_WRITE_MANY = text(
    """UPDATE order_copies AS c
    SET status = r.status, step = r.step, target_order_id = r.target_order_id,
        errors_log = r.errors_log, errors_count = r.errors_count,
        completed_at = CASE WHEN r.status = 'completed' THEN CAST(:now AS timestamptz) END,
        failed_at = CASE WHEN r.status = 'failed' THEN CAST(:now AS timestamptz) END,
        lease_expires_at = CASE WHEN r.status = 'in_progress'
            THEN CAST(:lease_ends AS timestamptz) END,
        updated_at = :now
    FROM json_to_recordset(CAST(:runs AS json)) AS r(id text, attempt int, status text,
        step text, target_order_id text, errors_log jsonb, errors_count int)
    WHERE c.id = r.id AND c.attempt = r.attempt AND (c.status = 'in_progress') IS TRUE
    RETURNING c.id"""
)


class Written(NamedTuple):
    """What a run writes at the end of a transaction: its checkpoint (``in_progress``) or
    its end (``completed``, ``failed``)."""

    id: str  # the copy's
    attempt: int
    status: CopyStatus
    step: str | None
    target_order_id: str | None
    errors_log: dict[str, Any]
    errors_count: int


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_many(session: Session, runs: Sequence[tuple[str, int]], now: datetime) -> set[str]:
    """Fence many (copy id, attempt) runs, as every transaction of a run starts: the ids of
    the copies their runs still own, now row-locked, so that a stalled older run stops
    here, before it reads or writes anything. Only locked, not written on PostgreSQL: the
    :func:`write_many` that ends the transaction renews the leases, and a row written once
    per transaction, not twice, costs its indexes half as much. Does not commit."""
    if not runs:
        return set()
    if not _postgresql(session):  # a write takes SQLite's one lock
        return {i for i, attempt in runs if _update_owned(session, i, attempt, updated_at=now)}
    ids, attempts = zip(*runs, strict=True)
    owned = session.execute(_LOCK_MANY, {"ids": list(ids), "attempts": list(attempts)})
    return set(owned.scalars())


def renew_many(
    session: Session, runs: Sequence[tuple[str, int]], now: datetime, lease: timedelta
) -> set[str]:
    """Set the leases of the (copy id, attempt) runs that still own their copies to end
    ``lease`` from now (a zero lease gives them up: the next claim may come at once);
    returns their ids. Does not commit."""
    if not runs:
        return set()
    ends = now + lease
    if not _postgresql(session):
        return {
            i
            for i, attempt in runs
            if _update_owned(session, i, attempt, lease_expires_at=ends, updated_at=now)
        }
    ids, attempts = zip(*runs, strict=True)
    owned = session.execute(
        _RENEW_MANY,
        {"ids": list(ids), "attempts": list(attempts), "now": now, "lease_ends": ends},
    )
    return set(owned.scalars())


def write_many(
    session: Session, runs: Sequence[Written], now: datetime, lease: timedelta
) -> set[str]:
    """Write each run's checkpoint, its lease renewed to end ``lease`` from now, or its end
    (in_progress → completed or failed); returns the ids written. A run that no longer
    owns its copy writes nothing. Does not commit."""
    _check(frozenset({CopyStatus.IN_PROGRESS}), CopyStatus.COMPLETED)
    _check(frozenset({CopyStatus.IN_PROGRESS}), CopyStatus.FAILED)
    if not runs:
        return set()
    ends = now + lease
    if not _postgresql(session):
        return {
            run.id
            for run in runs
            if _update_owned(
                session,
                run.id,
                run.attempt,
                status=run.status,
                step=run.step,
                target_order_id=run.target_order_id,
                errors_log=run.errors_log,
                errors_count=run.errors_count,
                completed_at=now if run.status == CopyStatus.COMPLETED else None,
                failed_at=now if run.status == CopyStatus.FAILED else None,
                lease_expires_at=ends if run.status == CopyStatus.IN_PROGRESS else None,
                updated_at=now,
            )
        }
    written = session.execute(
        _WRITE_MANY,
        {
            "runs": json.dumps([run._asdict() for run in runs], default=json_value),
            "now": now,
            "lease_ends": ends,
        },
    )
    return set(written.scalars())
