"""``order_subscriptions``: schedules that renew a source order (Commerce Layer's model).

A new subscription is ``active`` at once (``activate_by_source_order``, the default:
``pending`` without a usable wallet entry), or a ``draft`` until ``_activate``. The rules
live in ``copying.subscriptions.subscription_states`` and ``renewals``; their errors become
JSON:API ones in ``api.routes.domain_error`` (422 with a pointer, 409 ``INVALID_STATUS``).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, or_

from api import lookups
from api.errors import ApiError
from api.resources.common import TIMESTAMPS, choices, reference_attributes
from api.spec import Attribute, Context, Relationship, Resource, Trigger
from copying.subscriptions import subscription_items, subscription_states
from copying.subscriptions.history import EventKind
from copying.subscriptions.renewals import skip
from copying.subscriptions.schedules import FREQUENCIES
from copying.subscriptions.subscription_states import ALERT_PERIOD_HOURS, DUNNING, RENEWING
from models import (
    Customer,
    CustomerPaymentSource,
    Order,
    OrderSubscription,
    SubscriptionStatus,
    utcnow,
)
from models.subscriptions import OrderSubscriptionEvent

TYPE = "order_subscriptions"
S = SubscriptionStatus


def _renewing() -> Any:
    return OrderSubscription.status.in_(RENEWING)


def _expired() -> Any:
    return OrderSubscription.expires_at <= utcnow()


def _runnable() -> Any:
    """Renewing, a run planned, not expired."""
    return and_(
        _renewing(),
        OrderSubscription.next_run_at.is_not(None),
        or_(OrderSubscription.expires_at.is_(None), OrderSubscription.expires_at > utcnow()),
    )


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
        activate_by_source_order=attributes.get("activate_by_source_order", True),
        renewal_alert_period=attributes.get(
            "renewal_alert_period", subscription_states.DEFAULT_ALERT_PERIOD
        ),
        options=attributes.get("options"),
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
        "Schedules that renew a source order with an order copy per period: active at once "
        "(activate_by_source_order), else drafts until _activate. Scopes: filter[q][active], "
        "[expired], [runnable] (=true or false)."
    ),
    attributes=(
        Attribute(
            "number",
            "integer",
            nullable=False,
            filterable=True,
            sortable=True,
            description="Unique.",
        ),
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
            description="draft, pending (no usable wallet entry: attach one, then _activate), "
            "inactive, active, running (a renewal copy in flight), cancelled",
        ),
        Attribute(
            "customer_email",
            "string",
            filterable=True,
            sortable=True,
            description="The source order's.",
        ),
        Attribute(
            "activate_by_source_order",
            "boolean",
            writable="create",
            nullable=False,
            filterable=True,
            description="Start at once, the source order as the first run (default true).",
        ),
        _editable(
            "options",
            "object",
            'e.g. {"place_target_order": false}',
            nullable=False,
        ),
        _editable(
            "renewal_alert_period",
            "integer",
            f"Hours ({ALERT_PERIOD_HOURS[0]}-{ALERT_PERIOD_HOURS[1]}, default 1) before each run "
            "that order_subscriptions.renewal is sent.",
            nullable=False,
            minimum=ALERT_PERIOD_HOURS[0],
            filterable=True,
            sortable=True,
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
        Attribute(
            "last_run_at",
            "datetime",
            filterable=True,
            sortable=True,
            description="Its last renewal's end, failed or not (a retry's too).",
        ),
        Attribute(
            "occurrencies",
            "integer",
            nullable=False,
            filterable=True,
            sortable=True,
            description="Renewals run, failed or not; a retry does not count again.",
        ),
        Attribute("errors_count", "integer", nullable=False, filterable=True, sortable=True),
        Attribute("succeeded_on_last_run", "boolean", filterable=True),
        Attribute(
            "next_attempt_at",
            "datetime",
            filterable=True,
            sortable=True,
            description="When the failed renewal is retried (failure_policy); null: never.",
        ),
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
            "A failed renewal's retries and final_action (keep_active, deactivate, cancel). "
            'Default: {"retry_after_seconds": [], "final_action": "keep_active"}; dunning: '
            f"{json.dumps(DUNNING)}. Hard declines and SKUs gone are not retried.",
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
        Relationship("events", "order_subscription_events", inverse="order_subscription_id"),
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
        Trigger(
            "_skip",
            "boolean",
            _transition(skip),
            "true: skip the next run once (active only)",
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
    scopes={"active": _renewing, "expired": _expired, "runnable": _runnable},
)


ORDER_SUBSCRIPTION_EVENTS = Resource(
    type="order_subscription_events",
    model=OrderSubscriptionEvent,
    description=(
        "A subscription's history: the facts its fields do not keep (a run skipped, a move "
        "to pending and why, a wallet entry switched to, a renewal failed and its retry, a "
        "reminder sent), one per event, never changed; newest first."
    ),
    attributes=(
        Attribute(
            "kind",
            "string",
            nullable=False,
            filterable=True,
            sortable=True,
            description=", ".join(kind.value for kind in EventKind),
        ),
        Attribute(
            "details",
            "object",
            nullable=False,
            read=lambda event: event.data,
            description="What the event recorded: skipped: the run skipped; pending: the "
            "reason; wallet_switched: the entries from and to and the order that paid; "
            "renewal_failed: the copy, its errors and next_attempt_at; renewal_alert: the run "
            "it announces.",
        ),
        Attribute("created_at", "datetime", nullable=False, filterable=True, sortable=True),
    ),
    relationships=(
        Relationship("order_subscription", "order_subscriptions", column="order_subscription_id"),
    ),
    updatable=False,
    default_sort="-id",
    extra_filters={"order_subscription_id": "string"},
)
