"""``order_copies``: the fields of order_copy.md, plus ``skip_errors``; and
``order_copy_events``, each copy's history."""

from __future__ import annotations

from typing import Any

from api.errors import ApiError
from api.resources.common import TIMESTAMPS, choices, reference_attributes
from api.spec import Attribute, Context, Relationship, Resource, Scope, Trigger
from copying.copies import lifecycle
from copying.copies.options import CopyOptions
from models import CopyStatus, OrderCopy, OrderCopyEvent
from models.order_copies import ASKED, RECURRING


def create_copy(
    ctx: Context, attributes: dict[str, Any], related: dict[str, str | None]
) -> OrderCopy:
    source_id = related.get("source_order")
    if source_id is None:
        raise ApiError(
            422, "an order copy needs a source order", pointer="/data/relationships/source_order"
        )
    return lifecycle.create(  # a source order of another mode or none: a 422 from here
        ctx.session,
        mode=ctx.mode,
        source_order_id=source_id,
        options=CopyOptions.parse(attributes),
        reference=attributes.get("reference"),
        reference_origin=attributes.get("reference_origin"),
        metadata=attributes.get("metadata"),
    )


def retry_copy(ctx: Context, copy_id: str, _: Any) -> None:
    lifecycle.retry(ctx.session, copy_id, ctx.mode, by="api")


def abort_copy(ctx: Context, copy_id: str, _: Any) -> None:
    lifecycle.abort(ctx.session, copy_id, ctx.mode, by="api")


def delete_copy(ctx: Context, copy: OrderCopy) -> None:
    """Delete the copy (and its history), never its orders; not while it runs."""
    if copy.status == CopyStatus.IN_PROGRESS:
        raise ApiError(
            409,
            f"order copy {copy.id} is in_progress; delete it once it finished",
            code="INVALID_STATUS",
        )
    ctx.session.delete(copy)


def _flag(name: str, description: str) -> Attribute:
    return Attribute(
        name, "boolean", writable="create", nullable=False, filterable=True, description=description
    )


STATUS = Attribute(
    "status",
    "string",
    nullable=False,
    filterable=True,
    sortable=True,
    choices=choices(CopyStatus),
    description="pending, in_progress, failed, completed or aborted (never ran)",
)
#: What a run leaves on any copy, asked for or a renewal.
RUN_ATTRIBUTES = (
    Attribute("started_at", "datetime", filterable=True, sortable=True),
    Attribute("completed_at", "datetime", filterable=True, sortable=True),
    Attribute("failed_at", "datetime", filterable=True, sortable=True),
)
OUTCOME_ATTRIBUTES = (
    Attribute(
        "errors_log",
        "object",
        nullable=False,
        description="The latest attempt's errors: field or step → messages.",
    ),
    Attribute("errors_count", "integer", nullable=False, filterable=True, sortable=True),
    *TIMESTAMPS,
    *reference_attributes(),
)


ORDER_COPIES = Resource(
    type="order_copies",
    model=OrderCopy,
    description=(
        "Copies of a source order into a new target order, run by a worker: those asked "
        "for and renewals alike (copy_type tells them apart)."
    ),
    attributes=(
        Attribute(
            "copy_type",
            "string",
            nullable=False,
            filterable=True,
            sortable=True,
            choices=(ASKED, RECURRING),
            description="order_copies (asked for), or recurring_order_copies (a renewal: "
            "also served as such at /api/recurring_order_copies)",
        ),
        STATUS,
        *RUN_ATTRIBUTES,
        *(_flag(name, description) for name, description in CopyOptions.described()),
        *OUTCOME_ATTRIBUTES,
    ),
    relationships=(
        Relationship(
            "source_order", "orders", column="source_order_id", writable="create", required=True
        ),
        Relationship("target_order", "orders", column="target_order_id"),
        Relationship("order_subscription", "order_subscriptions", column="order_subscription_id"),
        Relationship("events", "order_copy_events", inverse="order_copy_id"),
    ),
    triggers=(
        Trigger(
            "_retry",
            "boolean",
            retry_copy,
            "true: put a failed copy back to pending for a new attempt",
        ),
        Trigger(
            "_abort",
            "boolean",
            abort_copy,
            "true: a pending copy becomes aborted and never runs",
        ),
    ),
    create=create_copy,
    delete=delete_copy,
    extra_filters={"source_order_id": "string", "target_order_id": "string"},
)

#: The options a renewal takes from its subscription (the others keep their defaults).
_RENEWAL_OPTIONS = ("place_target_order", "reuse_wallet")

RECURRING_ORDER_COPIES = Resource(
    type=RECURRING,
    model=OrderCopy,
    description=(
        "Renewals: the copies a subscription's schedule makes (read only; retried, aborted "
        "and deleted as order_copies)."
    ),
    attributes=(
        STATUS,
        *RUN_ATTRIBUTES,
        *(
            Attribute(name, "boolean", nullable=False, filterable=True, description=description)
            for name, description in CopyOptions.described()
            if name in _RENEWAL_OPTIONS
        ),
        *OUTCOME_ATTRIBUTES,
    ),
    relationships=(
        Relationship("source_order", "orders", column="source_order_id"),
        Relationship("target_order", "orders", column="target_order_id"),
        Relationship("order_subscription", "order_subscriptions", column="order_subscription_id"),
        Relationship("events", "order_copy_events", inverse="order_copy_id"),
    ),
    updatable=False,
    extra_filters={
        "source_order_id": "string",
        "target_order_id": "string",
        "order_subscription_id": "string",
    },
    scope=Scope(
        where=lambda: OrderCopy.period_key.is_not(None),
        holds=lambda copy: copy.period_key is not None,
    ),
)


def _data(key: str, default: Any = None) -> Any:
    """Read one key of an event's recorded data."""

    def read(event: OrderCopyEvent) -> Any:
        return event.data.get(key, default)

    return read


def _errors(event: OrderCopyEvent) -> Any:
    data = event.data
    return data.get("errors", data.get("previous_errors", {}))


ORDER_COPY_EVENTS = Resource(
    type="order_copy_events",
    model=OrderCopyEvent,
    description="A copy's history, one fact per event, never changed; newest first.",
    attributes=(
        Attribute(
            "kind",
            "string",
            nullable=False,
            filterable=True,
            sortable=True,
            description=(
                "created, claimed, checkpoint, transient_error, completed, failed, "
                "retried or aborted"
            ),
        ),
        Attribute(
            "attempt",
            "integer",
            nullable=False,
            filterable=True,
            sortable=True,
            description="The run it belongs to (each claim is a new attempt; 0: before any).",
        ),
        Attribute(
            "step",
            "string",
            read=_data("step"),
            description="The last checkpoint the run had reached (claimed, checkpoint, "
            "transient_error, completed, failed).",
        ),
        Attribute(
            "errors",
            "object",
            nullable=False,
            read=_errors,
            description="completed, failed: the run's errors_log; retried: the failed run's "
            "errors, which the retry cleared from the copy; otherwise empty.",
        ),
        Attribute(
            "message",
            "string",
            read=_data("message"),
            description="transient_error: what went wrong (the run was retried).",
        ),
        Attribute(
            "by",
            "string",
            read=_data("by"),
            description="retried, aborted: who asked (api, cli, failure_policy).",
        ),
        Attribute(
            "details",
            "object",
            nullable=False,
            read=lambda event: event.data,
            description="Everything the event recorded (the keys above and the rest).",
        ),
        Attribute("created_at", "datetime", nullable=False, filterable=True, sortable=True),
    ),
    relationships=(Relationship("order_copy", "order_copies", column="order_copy_id"),),
    updatable=False,
    default_sort="-id",
    extra_filters={"order_copy_id": "string"},
)
