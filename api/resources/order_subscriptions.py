"""``order_subscriptions``: schedules that renew a source order (Commerce Layer's model).

A new subscription is a ``draft``: nothing renews until ``_activate``. The rules
live in ``copying.subscriptions.subscription_states``; their errors become JSON:API ones in
``api.routes.domain_error`` (422 with a pointer, 409 ``INVALID_STATUS``).
"""

from __future__ import annotations

from typing import Any

from api import lookups
from api.errors import ApiError
from api.resources.common import TIMESTAMPS, choices, reference_attributes
from api.spec import Attribute, Context, Relationship, Resource, Trigger
from copying.subscriptions import subscription_items, subscription_states
from copying.subscriptions.schedules import FREQUENCIES
from models import (
    Customer,
    CustomerPaymentSource,
    Order,
    OrderSubscription,
    SubscriptionStatus,
    utcnow,
)

TYPE = "order_subscriptions"


def create_subscription(
    ctx: Context, attributes: dict[str, Any], related: dict[str, str | None]
) -> OrderSubscription:
    source_id = related.get("source_order")
    if source_id is None:
        raise ApiError(
            422,
            "an order subscription needs a source order",
            pointer="/data/relationships/source_order",
        )
    source = lookups.load_related(ctx.session, Order, "orders", source_id, ctx.mode, "source_order")
    customer_id = related.get("customer")
    if customer_id is not None:
        lookups.load_related(ctx.session, Customer, "customers", customer_id, ctx.mode, "customer")
    entry_id = related.get("customer_payment_source")
    if entry_id is not None:
        lookups.load_related(
            ctx.session,
            CustomerPaymentSource,
            "customer_payment_sources",
            entry_id,
            ctx.mode,
            "customer_payment_source",
        )
    subscription = subscription_states.create(
        ctx.session,
        source,
        frequency=attributes["frequency"],
        now=utcnow(),
        customer_id=customer_id,
        wallet_entry_id=entry_id,
        starts_at=attributes.get("starts_at"),
        expires_at=attributes.get("expires_at"),
        next_run_at=attributes.get("next_run_at"),
        place_target_order=attributes.get("place_target_order", True),
        catch_up=attributes.get("catch_up", False),
        failure_policy=attributes.get("failure_policy"),
        reference=attributes.get("reference"),
        reference_origin=attributes.get("reference_origin"),
        metadata=attributes.get("metadata"),
    )
    subscription_items.add_from_source(ctx.session, subscription)
    return subscription


def _check_update(ctx: Context, subscription: OrderSubscription, names: set[str]) -> None:
    subscription_states.check_editable(subscription, names)


def _check_updated(ctx: Context, subscription: OrderSubscription, changed: set[str]) -> None:
    subscription_states.apply_changes(ctx.session, subscription, changed, utcnow())


def _transition(move: Any) -> Any:
    def run(ctx: Context, subscription_id: str, _: Any) -> None:
        subscription = lookups.load(
            ctx.session, OrderSubscription, TYPE, subscription_id, ctx.mode, lock=True
        )
        move(ctx.session, subscription, utcnow())

    return run


def _delete(ctx: Context, subscription: OrderSubscription) -> None:
    subscription_states.delete(ctx.session, subscription)


def _editable(name: str, kind: Any, description: str, **options: Any) -> Attribute:
    return Attribute(name, kind, writable="always", description=description, **options)


ORDER_SUBSCRIPTIONS = Resource(
    type=TYPE,
    model=OrderSubscription,
    description=(
        "Schedules that renew a source order with an order copy per period. New ones are "
        "drafts: _activate starts them."
    ),
    attributes=(
        _editable(
            "frequency",
            "string",
            f"{', '.join(FREQUENCIES)}, or a crontab expression at most hourly "
            "(its minute field one number), in UTC",
            required=True,
            nullable=False,
            max_length=64,
            filterable=True,
            sortable=True,
        ),
        Attribute(
            "status",
            "string",
            nullable=False,
            filterable=True,
            sortable=True,
            choices=choices(SubscriptionStatus),
            description="draft (new), inactive, active, running (a renewal in flight), cancelled",
        ),
        Attribute(
            "starts_at",
            "datetime",
            writable="create",
            filterable=True,
            sortable=True,
            description="The schedule's anchor (default: when created); the source order "
            "stands for the run at the start.",
        ),
        _editable(
            "expires_at",
            "datetime",
            "No renewal from then on; after starts_at.",
            filterable=True,
            sortable=True,
        ),
        _editable(
            "next_run_at",
            "datetime",
            "The next renewal: set it (in the future) to move that run; later ones "
            "follow the schedule.",
            filterable=True,
            sortable=True,
        ),
        Attribute("last_run_at", "datetime", filterable=True, sortable=True),
        Attribute("occurrencies", "integer", nullable=False, filterable=True, sortable=True),
        Attribute("errors_count", "integer", nullable=False, filterable=True, sortable=True),
        Attribute("succeeded_on_last_run", "boolean", filterable=True),
        _editable(
            "place_target_order",
            "boolean",
            "Place each renewal's target order (default true).",
            nullable=False,
            filterable=True,
        ),
        _editable(
            "catch_up",
            "boolean",
            "After downtime renew every missed period (default: only the latest).",
            nullable=False,
            filterable=True,
        ),
        _editable(
            "failure_policy",
            "object",
            'A failed renewal\'s retries and final action, e.g. {"retry_after_seconds": '
            '[86400, 259200, 604800], "final_action": "deactivate"} (keep_active, '
            "deactivate or cancel).",
            nullable=False,
        ),
        *TIMESTAMPS,
        *reference_attributes(),
    ),
    relationships=(
        Relationship(
            "source_order", "orders", column="source_order_id", writable="create", required=True
        ),
        Relationship("customer", "customers", column="customer_id", writable="create"),
        Relationship(
            "customer_payment_source",
            "customer_payment_sources",
            column="customer_payment_source_id",
            writable="always",
        ),
        Relationship("order_copies", "order_copies", inverse="order_subscription_id"),
        Relationship(
            "recurring_order_copies", "recurring_order_copies", inverse="order_subscription_id"
        ),
        Relationship(
            "order_subscription_items", "order_subscription_items", inverse="order_subscription_id"
        ),
    ),
    triggers=(
        Trigger(
            "_activate",
            "boolean",
            _transition(subscription_states.activate),
            "true: start renewing (draft or inactive → active)",
        ),
        Trigger(
            "_deactivate",
            "boolean",
            _transition(subscription_states.deactivate),
            "true: pause renewing (active or running → inactive)",
        ),
        Trigger(
            "_cancel",
            "boolean",
            _transition(subscription_states.cancel),
            "true: stop for good (→ cancelled)",
        ),
    ),
    create=create_subscription,
    delete=_delete,
    check_update=_check_update,
    check_updated=_check_updated,
    extra_filters={
        "source_order_id": "string",
        "customer_id": "string",
        "customer_payment_source_id": "string",
    },
)
