"""A copy's history: one row per fact, never updated."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from models import CopyStep, Mode, OrderCopyEvent
from models.dialects import insert_rows


class EventKind(enum.StrEnum):
    """What a copy's history records, one event per fact."""

    CREATED = "created"
    RETRIED = "retried"
    ABORTED = "aborted"
    CLAIMED = "claimed"
    CHECKPOINT = "checkpoint"
    TRANSIENT_ERROR = "transient_error"
    COMPLETED = "completed"
    FAILED = "failed"


#: Core, not ORM-enabled, inserts: no session holds these rows (half the CPU per INSERT).
EVENTS: Table = OrderCopyEvent.__table__  # type: ignore[assignment]


def record(
    session: Session, copy_id: str, mode: Mode, attempt: int, kind: EventKind, **data: Any
) -> None:
    """Append an event (``created``, ``claimed``, ``checkpoint``, ...). Does not commit."""
    session.execute(
        insert(EVENTS).values(
            order_copy_id=copy_id, mode=mode, attempt=attempt, kind=kind, data=data
        )
    )


class Event(NamedTuple):
    order_copy_id: str
    mode: Mode
    attempt: int
    kind: EventKind
    data: dict[str, Any]


def append(session: Session, events: Sequence[Event]) -> None:
    """Append ``events`` (of any kinds, any copies) in one statement. Does not commit."""
    insert_rows(session, EVENTS, [event._asdict() for event in events])


def record_many(
    session: Session, kind: EventKind, facts: Sequence[tuple[str, Mode, int, dict[str, Any]]]
) -> None:
    """Append one ``kind`` event per (copy id, mode, attempt, data), in one statement.
    Does not commit."""
    append(
        session,
        [Event(copy_id, mode, attempt, kind, data) for copy_id, mode, attempt, data in facts],
    )


def checkpoints(copy_id: str, mode: Mode, attempt: int, steps: Sequence[CopyStep]) -> list[Event]:
    """The ``checkpoint`` events of the steps a run reached."""
    return [Event(copy_id, mode, attempt, EventKind.CHECKPOINT, {"step": step}) for step in steps]
