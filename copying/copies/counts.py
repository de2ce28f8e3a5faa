"""The counts ``/metrics`` reports: copies by status, history events by kind, and the
completed copies' run times, read from ``metric_counts`` (PostgreSQL's triggers keep it)
or counted from the tables (:func:`recount`: the embedded SQLite, and the check that the
two agree).

A count is a ``(mode, name, label) → value`` mapping (:data:`Counts`); names and labels as
:class:`models.metric_counts.CountName` describes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Float,
    Table,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
)

from models import CopyStatus, Mode, OrderCopy, OrderCopyEvent
from models.metric_counts import CountName, MetricCount

#: Upper bounds (seconds) of the run time histogram's buckets. Migration 0016's trigger
#: sorts run times into the same buckets: change both together (the test of
#: :func:`reconcile` fails when they differ).
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
INFINITY = "+Inf"
Key = tuple[Mode, str, str]
Counts = dict[Key, int]

#: Core: the counts are read and written set-wise, never as objects.
COUNTS: Table = MetricCount.__table__  # type: ignore[assignment]


def bucket_label(bound: float) -> str:
    return repr(float(bound))


def postgresql(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def _durations(connection: Connection) -> tuple[ColumnElement[Any], ColumnElement[Any], Any]:
    """A completed copy's bucket label and run time in microseconds, and their sum, as this
    database computes them: on PostgreSQL in whole microseconds, as the trigger does."""
    if postgresql(connection):
        micros: ColumnElement[Any] = cast(
            func.extract("epoch", OrderCopy.completed_at - OrderCopy.started_at) * 1_000_000,
            BigInteger(),
        )
        within = [micros <= round(bound * 1_000_000) for bound in DURATION_BUCKETS]
        total: Any = cast(func.sum(micros), BigInteger())
    else:
        seconds = (
            func.julianday(OrderCopy.completed_at) - func.julianday(OrderCopy.started_at)
        ) * 86400.0
        micros = func.round(seconds * 1_000_000)
        within = [seconds <= bound for bound in DURATION_BUCKETS]
        total = type_coerce(func.sum(micros), Float())
    bucket = case(
        *(
            (test, bucket_label(bound))
            for test, bound in zip(within, DURATION_BUCKETS, strict=True)
        ),
        else_=INFINITY,
    )
    return bucket, micros, total


def recount(connection: Connection) -> Counts:
    """Every count, from the tables (whole-table aggregates: for SQLite and checks only)."""
    counts: Counts = {}
    for mode, status, count in connection.execute(
        select(OrderCopy.mode, OrderCopy.status, func.count()).group_by(
            OrderCopy.mode, OrderCopy.status
        )
    ):
        counts[Mode(mode), CountName.COPIES, str(status)] = count
    for mode, kind, count in connection.execute(
        select(OrderCopyEvent.mode, OrderCopyEvent.kind, func.count()).group_by(
            OrderCopyEvent.mode, OrderCopyEvent.kind
        )
    ):
        counts[Mode(mode), CountName.COPY_EVENTS, kind] = count
    bucket, _, total = _durations(connection)
    timed = (OrderCopy.completed_at.is_not(None), OrderCopy.started_at.is_not(None))
    for mode, label, count in connection.execute(
        select(OrderCopy.mode, bucket, func.count()).where(*timed).group_by(OrderCopy.mode, bucket)
    ):
        counts[Mode(mode), CountName.COPY_DURATIONS, label] = count
    for mode, value in connection.execute(
        select(OrderCopy.mode, total).where(*timed).group_by(OrderCopy.mode)
    ):
        counts[Mode(mode), CountName.COPY_DURATION_MICROS, ""] = int(value or 0)
    return {key: value for key, value in counts.items() if value}


def read(connection: Connection) -> Counts:
    """Every count, from ``metric_counts`` (PostgreSQL): as many rows as the deltas written
    since the last :func:`fold`, whatever the size of the tables."""
    rows = connection.execute(
        select(COUNTS.c.mode, COUNTS.c.name, COUNTS.c.label, func.sum(COUNTS.c.value)).group_by(
            COUNTS.c.mode, COUNTS.c.name, COUNTS.c.label
        )
    )
    return {(Mode(mode), name, label): int(value) for mode, name, label, value in rows if value}


def current(connection: Connection) -> Counts:
    """The counts, the cheapest way this database has."""
    return read(connection) if postgresql(connection) else recount(connection)


def fold(connection: Connection) -> int:
    """Replace the delta rows by one row per key with their sum, in one statement (rows
    written meanwhile by other transactions stay, and are folded next time); returns the
    rows folded. Does not commit; nothing to do on SQLite."""
    if not postgresql(connection):
        return 0
    gone = delete(COUNTS).returning(COUNTS.c.mode, COUNTS.c.name, COUNTS.c.label, COUNTS.c.value)
    deleted = gone.cte("deleted")
    total = func.sum(deleted.c.value)
    folded = connection.execute(
        insert(COUNTS)
        .from_select(
            ["mode", "name", "label", "value"],
            select(deleted.c.mode, deleted.c.name, deleted.c.label, total)
            .group_by(deleted.c.mode, deleted.c.name, deleted.c.label)
            .having(total != 0),
        )
        .add_cte(deleted)
        .returning(COUNTS.c.id)
    )
    return len(folded.all())


def reconcile(connection: Connection) -> Counts:
    """Recount the tables and write what ``metric_counts`` misses as one more delta per key
    (zero rows when the triggers kept them, as they do unless someone disabled them);
    returns those corrections. The caller runs it in one REPEATABLE READ transaction: the
    recount and the deltas are then read from one snapshot, and a correction stays right
    whatever commits meanwhile (it adds only what that snapshot lacked). Does not commit;
    nothing to do on SQLite, whose counts are recounted at each read."""
    if not postgresql(connection):
        return {}
    counted, kept = recount(connection), read(connection)
    corrections = {
        key: counted.get(key, 0) - kept.get(key, 0)
        for key in counted.keys() | kept.keys()
        if counted.get(key, 0) != kept.get(key, 0)
    }
    if corrections:
        connection.execute(
            insert(COUNTS),
            [
                {"mode": mode, "name": name, "label": label, "value": value}
                for (mode, name, label), value in sorted(corrections.items())
            ],
        )
    return corrections


def of(counts: Counts, name: CountName, labels: Iterable[str]) -> dict[tuple[Mode, str], int]:
    """``name``'s values by (mode, label), zero for each label of ``labels`` not counted."""
    return {(mode, label): counts.get((mode, name, label), 0) for mode in Mode for label in labels}


def oldest_pending(connection: Connection, mode: Mode, now: datetime) -> datetime | None:
    """When the oldest due pending copy of ``mode`` was created (not one scheduled for a
    later retry), or None: what ``/metrics`` and the dashboard's overview report as the
    queue's age. One index lookup."""
    created_at: datetime | None = connection.scalar(
        select(OrderCopy.created_at)
        .where(
            OrderCopy.mode == mode,
            OrderCopy.status == CopyStatus.PENDING,
            or_(OrderCopy.next_attempt_at.is_(None), OrderCopy.next_attempt_at <= now),
        )
        .order_by(OrderCopy.created_at)
        .limit(1)
    )
    return created_at
