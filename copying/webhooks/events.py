"""Writing the events a state change owes to webhooks, in that change's transaction.

An event row per listening webhook (its topic, its mode, not disabled) is the outbox: it
commits or rolls back with the change that causes it, so an event is never lost and
never invented; delivering it (at least once) is another process's work
(``webhooks.delivery``). One statement for however many changes and webhooks, and no
row at all when nobody listens.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Insert,
    String,
    Table,
    and_,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.orm import Session

from copying.webhooks.topics import TOPICS
from models import EventStatus, Mode, Webhook, WebhookEvent

EVENTS: Table = WebhookEvent.__table__  # type: ignore[assignment]
WEBHOOKS: Table = Webhook.__table__  # type: ignore[assignment]


#: A resource's document, given the relationships to include.
Snapshot = Callable[[Sequence[str]], dict[str, Any]]


class Change(NamedTuple):
    """A resource whose state changed, and the topic that names the change."""

    resource_id: str
    mode: Mode
    topic: str


#: The columns an event is written with, wherever it is written (here, and the claim
#: statement's ``order_copies.start`` events: ``copy_states``).
COLUMNS = (
    "id",
    "mode",
    "webhook_id",
    "topic",
    "resource_type",
    "resource_id",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
    "updated_at",
)


def inserting(
    changed: FromClause,
    resource_id: ColumnElement[Any],
    mode: ColumnElement[Any],
    topic: ColumnElement[Any],
    resource_type: ColumnElement[Any],
    at: ColumnElement[Any],
    *where: ColumnElement[bool],
) -> Insert:
    """PostgreSQL: an INSERT of the events owed for the rows of ``changed`` (a CTE of the
    statement making the change: ``resource_id``, ``mode`` and the moment ``at`` are its
    columns, ``topic`` and ``resource_type`` expressions of them; ``where``: which of its
    rows owe them), for use as a CTE of that statement: the change and its events in one
    round trip."""
    w = WEBHOOKS.c
    listening = and_(w.topic == topic, w.mode == mode, w.disabled_at.is_(None))
    rows = (
        select(
            func.gen_random_uuid().cast(String()),
            w.mode,
            w.id,
            w.topic,
            resource_type,
            resource_id,
            literal(EventStatus.PENDING.value),
            literal(0),
            at,
            at,
            at,
        )
        .select_from(changed.join(WEBHOOKS, listening))
        .where(*where)
    )
    return insert(EVENTS).from_select(list(COLUMNS), rows)


#: PostgreSQL: the changes as arrays, joined to the webhooks listening; the events' ids
#: made by the database (a UUID each).
_RECORD_PG = text(
    f"""INSERT INTO webhook_events ({", ".join(COLUMNS)})
    SELECT CAST(gen_random_uuid() AS text), w.mode, w.id, w.topic, c.resource_type,
        c.resource_id, 'pending', 0, :now, :now, :now
    FROM unnest(CAST(:ids AS text[]), CAST(:modes AS text[]), CAST(:topics AS text[]),
        CAST(:types AS text[])) AS c(resource_id, mode, topic, resource_type)
    JOIN webhooks AS w ON w.topic = c.topic AND w.mode = c.mode AND w.disabled_at IS NULL"""
)


def record(
    session: Session,
    changes: Sequence[Change],
    now: datetime,
    *,
    snapshot: Snapshot | None = None,
) -> None:
    """Write the events ``changes`` owe to the webhooks listening. Does not commit.

    ``snapshot`` renders the document of a resource about to go (its ``*.destroy``
    events), given a webhook's ``include_resources``: each event keeps its own, as the
    resource will not be there to render when the event is sent."""
    if not changes:
        return
    if snapshot is None and session.get_bind().dialect.name == "postgresql":
        session.execute(
            _RECORD_PG,
            {
                "ids": [c.resource_id for c in changes],
                "modes": [str(c.mode) for c in changes],
                "topics": [c.topic for c in changes],
                "types": [TOPICS[c.topic] for c in changes],
                "now": now,
            },
        )
        return
    listening = session.execute(
        select(Webhook.id, Webhook.mode, Webhook.topic, Webhook.include_resources).where(
            Webhook.topic.in_({c.topic for c in changes}), Webhook.disabled_at.is_(None)
        )
    ).all()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "mode": mode,
            "webhook_id": webhook_id,
            "topic": topic,
            "resource_type": TOPICS[topic],
            "resource_id": change.resource_id,
            "status": EventStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "payload": None if snapshot is None else snapshot(include),
            "created_at": now,
            "updated_at": now,
        }
        for change in changes
        for webhook_id, mode, topic, include in listening
        if (topic, mode) == (change.topic, change.mode)
    ]
    if rows:
        session.execute(insert(EVENTS), rows)
