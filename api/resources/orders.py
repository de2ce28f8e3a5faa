"""``orders``, their ``line_items`` and ``addresses``; ``order_subscriptions`` (read-only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select

from api.errors import ApiError
from api.resources.common import TIMESTAMPS, plain_create, plain_delete, reference_attributes
from api.spec import Attribute, Context, Relationship, Resource, Trigger
from copying import order_states, orders, targets, wallet
from models import (
    Address,
    CustomerPaymentSource,
    FulfillmentStatus,
    ItemType,
    LineItem,
    Order,
    OrderCopy,
    OrderStatus,
    OrderSubscription,
    PaymentStatus,
    Sku,
    SubscriptionStatus,
    utcnow,
)


def _choices(enum_type: Any) -> tuple[str, ...]:
    return tuple(member.value for member in enum_type)


def _place(ctx: Context, order_id: str, _: Any) -> None:
    problems = orders.place_order(ctx.sessions, order_id, ctx.mode, gateways=ctx.gateways)
    if problems:
        raise ApiError(422, "; ".join(problems), pointer="/data/attributes/_place")


def _cancel(ctx: Context, order_id: str, _: Any) -> None:
    problems = orders.cancel_order(ctx.sessions, order_id, ctx.mode, gateways=ctx.gateways)
    if problems:
        raise ApiError(422, "; ".join(problems), pointer="/data/attributes/_cancel")


def _use_wallet_entry(ctx: Context, order_id: str, entry_id: Any) -> None:
    order = ctx.session.get_one(Order, order_id)
    entry = ctx.session.get(CustomerPaymentSource, entry_id)
    problem = wallet.check_wallet_entry(entry, entry_id, order, utcnow().date())
    if problem is not None or entry is None:
        raise ApiError(
            422,
            problem or "unknown wallet entry",
            pointer="/data/attributes/_customer_payment_source_id",
        )
    wallet.attach_wallet_entry(order, entry)


def _delete_order(ctx: Context, order: Order) -> None:
    if order.status not in order_states.PLACEABLE:
        raise ApiError(
            409,
            f"order {order.id} is {order.status}; only draft or pending orders can be deleted",
            code="INVALID_STATUS",
        )
    copied = ctx.session.scalar(
        select(
            exists().where(
                (OrderCopy.source_order_id == order.id) | (OrderCopy.target_order_id == order.id)
            )
        )
    )
    if copied:
        raise ApiError(409, f"order {order.id} belongs to order copies; delete them first")
    ctx.session.delete(order)


ORDERS = Resource(
    type="orders",
    model=Order,
    attributes=(
        Attribute("number", "integer", nullable=False, filterable=True, sortable=True),
        Attribute(
            "status",
            "string",
            nullable=False,
            filterable=True,
            sortable=True,
            choices=_choices(OrderStatus),
        ),
        Attribute(
            "payment_status",
            "string",
            nullable=False,
            filterable=True,
            choices=_choices(PaymentStatus),
        ),
        Attribute(
            "fulfillment_status",
            "string",
            nullable=False,
            filterable=True,
            choices=_choices(FulfillmentStatus),
        ),
        Attribute("customer_email", "string", writable="always", max_length=255, filterable=True),
        Attribute(
            "currency_code",
            "string",
            writable="create",
            required=True,
            nullable=False,
            max_length=3,
            filterable=True,
        ),
        Attribute("subtotal_amount_cents", "integer", nullable=False),
        Attribute("shipping_amount_cents", "integer", nullable=False),
        Attribute("adjustment_amount_cents", "integer", nullable=False),
        Attribute("total_amount_cents", "integer", nullable=False, filterable=True, sortable=True),
        Attribute("payment_method", "string"),
        Attribute("placed_at", "datetime", filterable=True, sortable=True),
        Attribute("cancelled_at", "datetime", filterable=True, sortable=True),
        *TIMESTAMPS,
        *reference_attributes(),
    ),
    relationships=(
        Relationship("customer", "customers", column="customer_id", writable="always"),
        Relationship(
            "billing_address", "addresses", column="billing_address_id", writable="always"
        ),
        Relationship(
            "shipping_address", "addresses", column="shipping_address_id", writable="always"
        ),
        Relationship(
            "customer_payment_source",
            "customer_payment_sources",
            column="customer_payment_source_id",
        ),
        Relationship("line_items", "line_items", inverse="order_id"),
        Relationship("order_copies", "order_copies", inverse="source_order_id"),
        Relationship("origin_order_copies", "order_copies", inverse="target_order_id"),
    ),
    triggers=(
        Trigger(
            "_customer_payment_source_id",
            "string",
            _use_wallet_entry,
            "a wallet entry id: use it as the order's payment source",
        ),
        Trigger("_place", "boolean", _place, "true: place the order (authorizes, takes stock)"),
        Trigger("_cancel", "boolean", _cancel, "true: cancel the order (voids, releases stock)"),
    ),
    create=plain_create(
        Order,
        {
            "customer": "customer_id",
            "billing_address": "billing_address_id",
            "shipping_address": "shipping_address_id",
        },
        defaults={"metadata_": {}},
    ),
    delete=_delete_order,
    extra_filters={"customer_id": "string"},
)


def _refresh_totals(ctx: Context, order: Order) -> None:
    lines = targets.load_lines(ctx.session, order.id)
    for column, value in targets.totals(
        [
            {"item_type": line.item_type, "total_amount_cents": line.total_amount_cents}
            for line in lines
        ]
    ).items():
        setattr(order, column, value)
    if lines:
        order_states.open_order(order)


def _editable_order(ctx: Context, order_id: str | None) -> Order:
    order = ctx.session.get(Order, order_id) if order_id else None
    if order is None or order.mode != ctx.mode:
        raise ApiError(
            422,
            f"order {order_id} does not exist in {ctx.mode} mode",
            pointer="/data/relationships/order",
        )
    if order.status not in order_states.PLACEABLE:
        raise ApiError(
            409,
            f"order {order.id} is {order.status}; line items can change only "
            "while it is draft or pending",
            code="INVALID_STATUS",
        )
    return order


def _create_line(
    ctx: Context, attributes: dict[str, Any], related: dict[str, str | None]
) -> LineItem:
    order = _editable_order(ctx, related.get("order"))
    item_type = ItemType(attributes.get("item_type") or ItemType.SKUS)
    quantity = attributes.get("quantity", 1)
    name = attributes.get("name") or ""
    sku_code = attributes.get("sku_code")
    unit = attributes.get("unit_amount_cents")
    if item_type == ItemType.SKUS:
        sku = ctx.session.scalar(select(Sku).where(Sku.mode == ctx.mode, Sku.code == sku_code))
        if sku is None:
            raise ApiError(
                422,
                f"SKU {sku_code!r} does not exist in {ctx.mode} mode",
                pointer="/data/attributes/sku_code",
            )
        if sku.currency_code != order.currency_code:
            raise ApiError(
                422,
                f"SKU {sku.code} is priced in {sku.currency_code}, the order "
                f"is in {order.currency_code}",
                pointer="/data/attributes/sku_code",
            )
        unit, name = sku.unit_amount_cents, name or sku.name
    elif unit is None:
        raise ApiError(
            422,
            f"a {item_type} line item needs unit_amount_cents",
            pointer="/data/attributes/unit_amount_cents",
        )
    position = len(targets.load_lines(ctx.session, order.id))
    line = LineItem(
        mode=ctx.mode,
        order_id=order.id,
        position=position,
        item_type=item_type,
        sku_code=sku_code if item_type == ItemType.SKUS else None,
        name=name,
        quantity=quantity,
        unit_amount_cents=unit,
        total_amount_cents=unit * quantity,
        options=attributes.get("options") or [],
        metadata_=attributes.get("metadata") or {},
    )
    ctx.session.add(line)
    ctx.session.flush()
    _refresh_totals(ctx, order)
    return line


def _delete_line(ctx: Context, line: LineItem) -> None:
    order = _editable_order(ctx, line.order_id)
    ctx.session.delete(line)
    ctx.session.flush()
    _refresh_totals(ctx, order)


LINE_ITEMS = Resource(
    type="line_items",
    model=LineItem,
    attributes=(
        Attribute("sku_code", "string", writable="create", max_length=64, filterable=True),
        Attribute(
            "item_type", "string", writable="create", filterable=True, choices=_choices(ItemType)
        ),
        Attribute("name", "string", writable="create", max_length=255),
        Attribute("quantity", "integer", writable="create", nullable=False, minimum=1),
        Attribute("unit_amount_cents", "integer", writable="create"),
        Attribute("total_amount_cents", "integer", nullable=False),
        Attribute("options", "array", writable="create", nullable=False),
        Attribute("metadata", "object", column="metadata_", writable="create", nullable=False),
        *TIMESTAMPS,
    ),
    relationships=(
        Relationship("order", "orders", column="order_id", writable="create", required=True),
    ),
    create=_create_line,
    updatable=False,
    delete=_delete_line,
    default_sort="created_at",
    extra_filters={"order_id": "string"},
)


def _address_field(name: str, *, required: bool = False, length: int = 255) -> Attribute:
    return Attribute(
        name,
        "string",
        writable="always",
        required=required,
        nullable=not required,
        max_length=length,
        filterable=name in ("city", "country_code", "email", "zip_code"),
    )


ADDRESSES = Resource(
    type="addresses",
    model=Address,
    attributes=(
        _address_field("first_name"),
        _address_field("last_name"),
        _address_field("company"),
        _address_field("line_1", required=True),
        _address_field("line_2"),
        _address_field("city", required=True),
        _address_field("zip_code", length=32),
        _address_field("state_code", length=32),
        _address_field("country_code", required=True, length=2),
        _address_field("phone", length=64),
        _address_field("email"),
        *TIMESTAMPS,
    ),
    create=plain_create(Address),
    delete=plain_delete,
)


ORDER_SUBSCRIPTIONS = Resource(
    type="order_subscriptions",
    model=OrderSubscription,
    description="Read-only until subscription renewals land.",
    attributes=(
        Attribute("frequency", "string", nullable=False, filterable=True),
        Attribute(
            "status",
            "string",
            nullable=False,
            filterable=True,
            choices=_choices(SubscriptionStatus),
        ),
        Attribute("starts_at", "datetime", filterable=True, sortable=True),
        Attribute("expires_at", "datetime", filterable=True, sortable=True),
        Attribute("next_run_at", "datetime", filterable=True, sortable=True),
        Attribute("last_run_at", "datetime", filterable=True, sortable=True),
        Attribute("occurrencies", "integer", nullable=False),
        Attribute("errors_count", "integer", nullable=False),
        Attribute("succeeded_on_last_run", "boolean"),
        Attribute("place_target_order", "boolean", nullable=False),
        *TIMESTAMPS,
    ),
    relationships=(
        Relationship("source_order", "orders", column="source_order_id"),
        Relationship("customer", "customers", column="customer_id"),
        Relationship(
            "customer_payment_source",
            "customer_payment_sources",
            column="customer_payment_source_id",
        ),
        Relationship("order_copies", "order_copies", inverse="order_subscription_id"),
    ),
    updatable=False,
)
