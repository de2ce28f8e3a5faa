"""``order_subscription_items``: what a subscription in automatic mode renews (Commerce
Layer's). The rules live in ``copying.subscriptions.subscription_items``; their errors
become JSON:API ones in ``api.routes.domain_error`` (422 with a pointer, 409)."""

from __future__ import annotations

from typing import Any

from api import lookups
from api.errors import ApiError
from api.resources.common import METADATA, TIMESTAMPS
from api.spec import Attribute, Context, Relationship, Resource
from copying.subscriptions import subscription_items
from models import LineItem, OrderSubscription, OrderSubscriptionItem

TYPE = "order_subscription_items"


def _subscription(ctx: Context, subscription_id: str | None, pointer: str) -> OrderSubscription:
    """The item's subscription, its row locked (items are checked against its status and
    counted), or a 422 pointing at ``pointer``."""
    subscription = (
        lookups.find(
            ctx.session, OrderSubscription, subscription_id, ctx.mode, lock=True, keeping_key=True
        )
        if subscription_id is not None
        else None
    )
    if subscription is None:
        detail = (
            f"order_subscriptions {subscription_id} does not exist in {ctx.mode} mode"
            if subscription_id is not None
            else "an order subscription item needs its order subscription"
        )
        raise ApiError(422, detail, pointer=pointer)
    return subscription  # type: ignore[no-any-return]


def _create(
    ctx: Context, attributes: dict[str, Any], related: dict[str, str | None]
) -> OrderSubscriptionItem:
    subscription = _subscription(
        ctx, related.get("order_subscription"), "/data/relationships/order_subscription"
    )
    line_id = related.get("source_line_item")
    line = (
        lookups.load_related(
            ctx.session, LineItem, "line_items", line_id, ctx.mode, "source_line_item"
        )
        if line_id is not None
        else None
    )
    return subscription_items.add(
        ctx.session,
        subscription,
        sku_code=attributes.get("sku_code"),
        quantity=attributes.get("quantity"),
        unit_amount_cents=attributes.get("unit_amount_cents"),
        source_line=line,
        metadata=attributes.get("metadata"),
    )


def _locked_subscription(ctx: Context, item: OrderSubscriptionItem) -> OrderSubscription:
    return _subscription(ctx, item.order_subscription_id, "/data/relationships/order_subscription")


def _check_update(ctx: Context, item: OrderSubscriptionItem, names: set[str]) -> None:
    subscription_items.check_editable(_locked_subscription(ctx, item), names)


def _check_updated(ctx: Context, item: OrderSubscriptionItem, changed: set[str]) -> None:
    subscription_items.apply_changes(ctx.session, _locked_subscription(ctx, item), item, changed)


def _delete(ctx: Context, item: OrderSubscriptionItem) -> None:
    subscription_items.remove(ctx.session, _locked_subscription(ctx, item), item)


ORDER_SUBSCRIPTION_ITEMS = Resource(
    type=TYPE,
    model=OrderSubscriptionItem,
    description=(
        "What a subscription renews in automatic mode: each renewal's target order gets its "
        "items' SKUs, quantities and unit amounts. A subscription without items renews its "
        "whole source order."
    ),
    attributes=(
        Attribute(
            "sku_code",
            "string",
            writable="always",
            max_length=64,
            nullable=False,
            filterable=True,
            sortable=True,
            description="A SKU of the catalog sellable in the source order's currency "
            "(default: the source_line_item's).",
        ),
        Attribute(
            "quantity",
            "integer",
            writable="always",
            nullable=False,
            minimum=1,
            filterable=True,
            sortable=True,
            description="Default: the source line's, else 1.",
        ),
        Attribute(
            "unit_amount_cents",
            "integer",
            writable="always",
            nullable=False,
            minimum=0,
            filterable=True,
            sortable=True,
            description="What each renewal charges for one (default: the source line's "
            "unit amount, else the SKU's price), in the source order's currency.",
        ),
        Attribute(
            "total_amount_cents",
            "integer",
            nullable=False,
            read=lambda item: item.unit_amount_cents * item.quantity,
            description="unit_amount_cents x quantity.",
        ),
        *TIMESTAMPS,
        METADATA,
    ),
    relationships=(
        Relationship(
            "order_subscription",
            "order_subscriptions",
            column="order_subscription_id",
            writable="create",
            required=True,
        ),
        Relationship(
            "source_line_item", "line_items", column="source_line_item_id", writable="create"
        ),
    ),
    create=_create,
    check_update=_check_update,
    check_updated=_check_updated,
    delete=_delete,
    default_sort="created_at",
    extra_filters={"order_subscription_id": "string", "source_line_item_id": "string"},
)
