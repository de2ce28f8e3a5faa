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
from models import Adjustment, LineItem, OrderSubscription, OrderSubscriptionItem
from models.subscription_items import ITEM_TYPES

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
    line_id, adjustment_id = related.get("source_line_item"), related.get("adjustment")
    line = (
        lookups.load_related(
            ctx.session, LineItem, "line_items", line_id, ctx.mode, "source_line_item"
        )
        if line_id is not None
        else None
    )
    adjustment = (
        lookups.load_related(
            ctx.session, Adjustment, "adjustments", adjustment_id, ctx.mode, "adjustment"
        )
        if adjustment_id is not None
        else None
    )
    return subscription_items.add(
        ctx.session,
        subscription,
        sku_code=attributes.get("sku_code"),
        bundle_code=attributes.get("bundle_code"),
        adjustment=adjustment,
        quantity=attributes.get("quantity"),
        unit_amount_cents=attributes.get("unit_amount_cents"),
        source_line=line,
        metadata=attributes.get("metadata"),
    )


def _locked_subscription(ctx: Context, item: OrderSubscriptionItem) -> OrderSubscription:
    return _subscription(ctx, item.order_subscription_id, "/data/relationships/order_subscription")


def _check_update(ctx: Context, item: OrderSubscriptionItem, names: set[str]) -> None:
    subscription_items.check_editable(_locked_subscription(ctx, item), names)
    # The new values are set on the item unchecked, and the adjustment relationship is
    # looked up before _check_updated: nothing may be flushed before they are checked
    # (the request's session ends with the request).
    ctx.session.autoflush = False


def _check_updated(ctx: Context, item: OrderSubscriptionItem, changed: set[str]) -> None:
    subscription = _locked_subscription(ctx, item)
    subscription_items.apply_changes(ctx.session, subscription, item, changed)
    ctx.session.autoflush = True


def _delete(ctx: Context, item: OrderSubscriptionItem) -> None:
    subscription_items.remove(ctx.session, _locked_subscription(ctx, item), item)


ORDER_SUBSCRIPTION_ITEMS = Resource(
    type=TYPE,
    model=OrderSubscriptionItem,
    description=(
        "What a subscription renews in automatic mode: each renewal's target order gets a "
        "line per item (a SKU, a bundle or an adjustment) at its quantity and unit amount. "
        "A subscription without items renews its whole source order."
    ),
    attributes=(
        Attribute(
            "item_type",
            "string",
            nullable=False,
            choices=tuple(kind.value for kind in ITEM_TYPES),
            filterable=True,
            sortable=True,
            description="What the item names, fixed when it is made: skus (sku_code), "
            "bundles (bundle_code) or adjustments (the adjustment relationship).",
        ),
        Attribute(
            "sku_code",
            "string",
            writable="always",
            max_length=64,
            filterable=True,
            sortable=True,
            description="A SKU of the catalog sellable in the source order's currency "
            "(default: the source_line_item's). An item names one SKU, bundle or adjustment.",
        ),
        Attribute(
            "bundle_code",
            "string",
            writable="always",
            max_length=64,
            filterable=True,
            sortable=True,
            description="A bundle of the catalog, not discontinued, in the source order's "
            "currency (default: the source_line_item's).",
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
            filterable=True,
            sortable=True,
            description="What each renewal charges for one (default: the source line's "
            "unit amount, else the SKU's or the bundle's price, the adjustment's amount), in "
            "the source order's currency; 0 or more, but an adjustment's may be negative.",
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
        Relationship("sku", "skus", column="sku_id"),
        Relationship("bundle", "bundles", column="bundle_id"),
        Relationship("adjustment", "adjustments", column="adjustment_id", writable="always"),
    ),
    create=_create,
    check_update=_check_update,
    check_updated=_check_updated,
    delete=_delete,
    default_sort="created_at",
    extra_filters={
        "order_subscription_id": "string",
        "source_line_item_id": "string",
        "adjustment_id": "string",
    },
)
