"""``orders``, their ``line_items`` and ``addresses``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select

from api import lookups
from api.errors import ApiError
from api.resources.common import (
    COUNTRY,
    CURRENCY,
    TIMESTAMPS,
    choices,
    plain_create,
    reference_attributes,
)
from api.schemas import INT_MAX
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
    PaymentStatus,
    Sku,
    utcnow,
)


def _place(ctx: Context, order_id: str, _: Any) -> None:
    problems = orders.place_order(ctx.sessions, order_id, ctx.mode, gateways=ctx.gateways)
    if problems:
        raise ApiError(422, "; ".join(problems), pointer="/data/attributes/_place")


def _cancel(ctx: Context, order_id: str, _: Any) -> None:
    problems = orders.cancel_order(ctx.sessions, order_id, ctx.mode, gateways=ctx.gateways)
    if problems:
        raise ApiError(422, "; ".join(problems), pointer="/data/attributes/_cancel")


def _check_open(order: Order, doing: str) -> None:
    if order.status not in order_states.PLACEABLE:
        raise ApiError(
            409,
            f"order {order.id} is {order.status}; {doing} only while it is draft or pending",
            code="INVALID_STATUS",
        )


#: What may still change on an order once it is placed or cancelled.
ALWAYS_EDITABLE = frozenset({"reference", "reference_origin", "metadata"})


def _check_order_update(ctx: Context, order: Order, names: set[str]) -> None:
    orders.check_not_owned(ctx.session, order.id)
    changing = names - ALWAYS_EDITABLE
    if changing:
        _check_open(order, f"{', '.join(sorted(changing))} can change")


def _use_wallet_entry(ctx: Context, order_id: str, entry_id: Any) -> None:
    order = lookups.load(ctx.session, Order, "orders", order_id, ctx.mode, lock=True)
    orders.check_not_owned(ctx.session, order.id)
    _check_open(order, "its payment source can change")
    entry = lookups.find(ctx.session, CustomerPaymentSource, entry_id, ctx.mode)
    problem = wallet.problem_with_entry(entry, entry_id, order, utcnow().date())
    if problem is not None or entry is None:
        raise ApiError(
            422,
            problem or f"wallet entry {entry_id} no longer exists",
            pointer="/data/attributes/_customer_payment_source_id",
        )
    wallet.attach_wallet_entry(order, entry)


def _delete_order(ctx: Context, order: Order) -> None:
    orders.check_not_owned(ctx.session, order.id)
    _check_open(order, "it can be deleted")
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
            choices=choices(OrderStatus),
        ),
        Attribute(
            "payment_status",
            "string",
            nullable=False,
            filterable=True,
            choices=choices(PaymentStatus),
        ),
        Attribute(
            "fulfillment_status",
            "string",
            nullable=False,
            filterable=True,
            choices=choices(FulfillmentStatus),
        ),
        Attribute("customer_email", "string", writable="always", max_length=255, filterable=True),
        Attribute(
            "currency_code",
            "string",
            writable="create",
            required=True,
            nullable=False,
            pattern=CURRENCY,
            filterable=True,
            description="ISO 4217, e.g. USD",
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
        Trigger(
            "_place",
            "boolean",
            _place,
            "true: place the order (authorizes, takes stock)",
            transactional=False,
        ),
        Trigger(
            "_cancel",
            "boolean",
            _cancel,
            "true: cancel the order (voids, releases stock)",
            transactional=False,
        ),
    ),
    create=plain_create(Order, defaults={"metadata_": {}}),
    check_update=_check_order_update,
    delete=_delete_order,
    extra_filters={"customer_id": "string"},
)


def _refresh_totals(ctx: Context, order: Order) -> None:
    lines = targets.load_lines(ctx.session, order.id)
    totals = targets.totals(
        [
            {"item_type": line.item_type, "total_amount_cents": line.total_amount_cents}
            for line in lines
        ]
    )
    for column, value in totals.items():
        if abs(value) > INT_MAX:
            raise ApiError(
                422,
                f"the order's {column} would be {value}, more than {INT_MAX}",
                pointer="/data/attributes/quantity",
            )
        setattr(order, column, value)
    if lines:
        order_states.open_order(order)


def _editable_order(ctx: Context, order_id: str | None) -> Order:
    """The line item's order, row-locked (totals are recomputed from its lines)."""
    order: Order | None = lookups.find(ctx.session, Order, order_id, ctx.mode, lock=True)
    if order is None:
        raise ApiError(
            422,
            f"order {order_id} does not exist in {ctx.mode} mode",
            pointer="/data/relationships/order",
        )
    orders.check_not_owned(ctx.session, order.id)
    _check_open(order, "its line items can change")
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
    if abs(unit * quantity) > INT_MAX:
        raise ApiError(
            422,
            f"{quantity} times {unit} cents is more than {INT_MAX} cents",
            pointer="/data/attributes/quantity",
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
            "item_type", "string", writable="create", filterable=True, choices=choices(ItemType)
        ),
        Attribute("name", "string", writable="create", max_length=255),
        Attribute("quantity", "integer", writable="create", nullable=False, minimum=1),
        Attribute("unit_amount_cents", "integer", writable="create"),
        Attribute("total_amount_cents", "integer", nullable=False),
        Attribute(
            "options",
            "array",
            writable="create",
            nullable=False,
            description="Line item options (JSON), copied with the line.",
        ),
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


def _address_field(
    name: str, *, required: bool = False, length: int = 255, pattern: str | None = None
) -> Attribute:
    return Attribute(
        name,
        "string",
        writable="always",
        required=required,
        nullable=not required,
        max_length=None if pattern else length,
        pattern=pattern,
        filterable=name in ("city", "country_code", "email", "zip_code"),
    )


def _billed_or_shipped(ctx: Context, address: Address) -> list[str]:
    """The orders that bill or ship to ``address``, their rows locked."""
    return list(
        ctx.session.scalars(
            select(Order.id)
            .where(
                (Order.billing_address_id == address.id) | (Order.shipping_address_id == address.id)
            )
            .with_for_update()
        )
    )


def _check_address_update(ctx: Context, address: Address, names: set[str]) -> None:
    """An address is part of the orders it bills or ships to: not while a copy owns one."""
    orders.check_not_owned(ctx.session, _billed_or_shipped(ctx, address))


def _delete_address(ctx: Context, address: Address) -> None:
    """Delete the address; not while an order bills or ships to it."""
    used = ctx.session.scalar(
        select(
            exists().where(
                (Order.billing_address_id == address.id) | (Order.shipping_address_id == address.id)
            )
        )
    )
    if used:
        raise ApiError(409, f"address {address.id} belongs to orders; it stays")
    ctx.session.delete(address)


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
        _address_field("country_code", required=True, pattern=COUNTRY),
        _address_field("phone", length=64),
        _address_field("email"),
        *TIMESTAMPS,
    ),
    create=plain_create(Address),
    check_update=_check_address_update,
    delete=_delete_address,
)
