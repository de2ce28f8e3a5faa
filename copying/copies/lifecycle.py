"""Order copies: create one, retry a failed one, abort a pending one.

Each is one compare-and-set on the copy's row (``copy_states``) with its history event,
announced after commit (``dispatch``); running a copy is ``copying.runs``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Insert, Table, bindparam, cast, insert, literal, select
from sqlalchemy.orm import Session, make_transient_to_detached

from copying.copies import copy_states, history
from copying.copies.dispatch import publish_after_commit
from copying.copies.history import EventKind
from copying.copies.options import CopyOptions
from copying.errors import CopyInputError, CopyStateError, NotFoundError
from copying.webhooks import events, topics
from copying.webhooks.topics import TOPICS
from models import CopyStatus, Mode, Order, OrderCopy, utcnow
from models.base import storable

log = structlog.get_logger("ordercopy.copies")

#: A copy's attribute by column name (``metadata`` is ``metadata_``).
_ATTRIBUTES = {
    column.name: attribute.key
    for attribute in OrderCopy.__mapper__.column_attrs
    for column in attribute.columns
}

COPIES: Table = OrderCopy.__table__  # type: ignore[assignment]
ORDERS: Table = Order.__table__  # type: ignore[assignment]
MAX_TEXT = 255
MAX_METADATA_BYTES = 16 * 1024


# --- create ---------------------------------------------------------------------------


def check_copy_input(
    *,
    mode: Any,
    reference: Any,
    reference_origin: Any,
    metadata: Any,
    idempotency_key: Any = None,
) -> None:
    """Raise CopyInputError naming the first bad input."""
    if not isinstance(mode, Mode):
        raise CopyInputError("mode", f"{mode!r} is not one of test, live")
    for name, text in (
        ("reference", reference),
        ("reference_origin", reference_origin),
        ("idempotency_key", idempotency_key),
    ):
        if text is not None and not isinstance(text, str):
            raise CopyInputError(name, "must be a string")
        if text is not None and len(text) > MAX_TEXT:
            raise CopyInputError(name, f"is {len(text)} characters long, the limit is {MAX_TEXT}")
        if text is not None and "\x00" in text:
            raise CopyInputError(name, "must not contain NUL characters")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise CopyInputError("metadata", "must be an object of key-value pairs")
        try:
            size = len(json.dumps(metadata, allow_nan=False).encode())
        except (TypeError, ValueError) as error:
            raise CopyInputError("metadata", f"is not JSON: {error}") from None
        if size > MAX_METADATA_BYTES:
            raise CopyInputError("metadata", f"is {size} bytes, the limit is {MAX_METADATA_BYTES}")


def create(
    session: Session,
    *,
    mode: Mode,
    source_order_id: str,
    options: CopyOptions | None = None,
    reference: str | None = None,
    reference_origin: str | None = None,
    metadata: dict[str, Any] | None = None,
    order_subscription_id: str | None = None,
    customer_payment_source_id: str | None = None,
    idempotency_key: str | None = None,
    period_key: str | None = None,
    now: datetime | None = None,
) -> OrderCopy:
    """Add a ``pending`` copy of ``source_order_id`` and announce it after commit.

    Raises CopyInputError, writing nothing, on bad input. Does not commit.
    """
    options = options or CopyOptions()
    check_copy_input(
        mode=mode,
        reference=reference,
        reference_origin=reference_origin,
        metadata=metadata,
        idempotency_key=idempotency_key,
    )
    now = now or utcnow()
    row = copy_states.new_row(
        mode=mode,
        source_order_id=source_order_id,
        options=options,
        now=now,
        order_subscription_id=order_subscription_id,
        customer_payment_source_id=customer_payment_source_id,
        reference=reference,
        reference_origin=reference_origin,
        metadata=metadata,
        idempotency_key=idempotency_key,
        period_key=period_key,
    )
    created = options.as_columns()
    can_exist = isinstance(source_order_id, str) and storable(source_order_id)
    if not (can_exist and _insert_created(session, row, created)):
        raise CopyInputError(
            "source_order", f"order {source_order_id!r} does not exist in {mode} mode"
        )
    # The row as a persistent copy without a round trip: the unit of work's flush cost a
    # third of a create in the API (issue 20). ``new_row`` gives every column a value,
    # the rest are empty; nothing is left to load.
    copy = OrderCopy(**{attribute: row.get(column) for column, attribute in _ATTRIBUTES.items()})
    make_transient_to_detached(copy)
    session.add(copy)
    publish_after_commit(session, [copy.id])
    log.info(
        "copy_created",
        order_copy_id=copy.id,
        source_order_id=source_order_id,
        **created,
    )
    return copy


def _inserting_created() -> tuple[Insert, Insert]:
    """A new copy's INSERT, which writes the row only if its source order exists in the
    row's mode (``INSERT … SELECT … FROM orders``); and, for PostgreSQL, the same statement
    writing the copy's ``created`` event and the webhooks' events too (data-modifying
    ``WITH``s): one statement where a create took four (issue 20), built once, run with
    the row's values."""
    # Named apart from the columns: an INSERT keeps their names for its own parameters.
    given = {
        name: bindparam(f"new_{name}", type_=COPIES.c[name].type)
        for name in copy_states.NEW_ROW_COLUMNS
    }
    if_source = (
        # PostgreSQL: the mode, also compared below, takes the column's type here too.
        select(*(cast(v, COPIES.c.mode.type) if n == "mode" else v for n, v in given.items()))
        .select_from(ORDERS)
        .where(ORDERS.c.id == given["source_order_id"], ORDERS.c.mode == given["mode"])
    )
    copy = insert(COPIES).from_select(list(given), if_source)
    new = copy.returning(COPIES.c.id, COPIES.c.mode, COPIES.c.created_at).cte("new_copy")
    event = select(
        new.c.id,
        new.c.mode,
        literal(0),
        literal(EventKind.CREATED.value),
        bindparam("created", type_=history.EVENTS.c.data.type),
        given["created_at"],
        given["created_at"],
    )
    columns = ["order_copy_id", "mode", "attempt", "kind", "data", "created_at", "updated_at"]
    inserting = insert(history.EVENTS).from_select(columns, event, include_defaults=False)
    owed = events.inserting(
        new,
        new.c.id,
        new.c.mode,
        literal(topics.CREATE),
        literal(TOPICS[topics.CREATE]),
        new.c.created_at,
    ).cte("owed")
    return copy, inserting.add_cte(new).add_cte(owed).returning(history.EVENTS.c.id)


_INSERT_COPY, _INSERT_COPY_AND_EVENT = _inserting_created()


def _insert_created(session: Session, row: dict[str, Any], created: dict[str, Any]) -> bool:
    """Write the copy ``row``, its ``created`` event (``created``: its data) and the events
    the webhooks listening to its creation are owed, unless its source order does not exist
    in its mode: whether it did. Does not commit."""
    values = {f"new_{name}": value for name, value in row.items()}
    if session.get_bind().dialect.name == "postgresql":
        written = session.execute(_INSERT_COPY_AND_EVENT, {**values, "created": created})
        return written.first() is not None
    if not session.execute(_INSERT_COPY, values).rowcount:  # type: ignore[attr-defined]
        return False
    history.record(session, row["id"], row["mode"], 0, EventKind.CREATED, **created)
    change = events.Change(row["id"], row["mode"], topics.CREATE)
    events.record(session, [change], row["created_at"])
    return True


# --- retry ----------------------------------------------------------------------------


def retry(
    session: Session,
    copy_id: str,
    mode: Mode,
    *,
    by: str,
    now: datetime | None = None,
    not_before: datetime | None = None,
) -> OrderCopy:
    """Put a ``failed`` copy back to ``pending`` for a new run from its last checkpoint.

    The failed run's errors move to the copy's history. With ``not_before`` the
    run waits until then (the sweeper announces it when due); otherwise it is
    announced after commit. Raises NotFoundError or CopyStateError (another
    status, including a concurrent retry that won). Does not commit.
    """
    # Read afresh: the session may hold the copy as it was before this transaction
    # ended its run (the sweeper giving up a renewal that its failure policy retries).
    current = session.get(OrderCopy, copy_id, populate_existing=True)
    if current is None or current.mode != mode:
        raise NotFoundError(f"order copy {copy_id} does not exist in {mode} mode")
    previous = dict(current.errors_log)
    now = now or utcnow()
    if current.target_order_id is not None:
        # The copy takes its target back: an API write to it, holding its lock, ends first
        # (and one that comes after sees the copy unfinished: orders.check_not_owned).
        session.get(Order, current.target_order_id, with_for_update=True)
    row = copy_states.transition(
        session,
        copy_id,
        CopyStatus.PENDING,
        sources=frozenset({CopyStatus.FAILED}),
        claims=0,
        retries=OrderCopy.retries + 1,
        errors_log={},
        errors_count=0,
        failed_at=None,
        completed_at=None,
        lease_expires_at=None,
        next_attempt_at=not_before,
        dispatched_at=now,
        dispatches=0,
        updated_at=now,
    )
    if row is None:
        session.refresh(current)
        raise CopyStateError(copy_id, current.status, "only failed copies can be retried")
    waits = {"not_before": not_before.isoformat()} if not_before else {}
    history.record(
        session,
        copy_id,
        mode,
        row.attempt,
        EventKind.RETRIED,
        by=by,
        previous_errors=previous,
        **waits,
    )
    if not_before is None:
        publish_after_commit(session, [copy_id])
    log.info("copy_retried", order_copy_id=copy_id, by=by, step=row.step, not_before=not_before)
    return row


def abort(
    session: Session, copy_id: str, mode: Mode, *, by: str, now: datetime | None = None
) -> OrderCopy:
    """Move a ``pending`` copy to ``aborted``: it will never run (a queued message finds
    nothing to claim). Raises NotFoundError or CopyStateError. Does not commit."""
    current = session.get(OrderCopy, copy_id)
    if current is None or current.mode != mode:
        raise NotFoundError(f"order copy {copy_id} does not exist in {mode} mode")
    now = now or utcnow()
    row = copy_states.transition(
        session,
        copy_id,
        CopyStatus.ABORTED,
        sources=frozenset({CopyStatus.PENDING}),
        next_attempt_at=None,
        updated_at=now,
    )
    if row is None:
        session.refresh(current)
        raise CopyStateError(copy_id, current.status, "only pending copies can be aborted")
    history.record(session, copy_id, mode, row.attempt, EventKind.ABORTED, by=by)
    topic = topics.of_copy(topics.ABORT, current.copy_type)
    events.record(session, [events.Change(copy_id, mode, topic)], now)
    log.info("copy_aborted", order_copy_id=copy_id, by=by)
    return row
