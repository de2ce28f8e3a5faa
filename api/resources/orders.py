"""``orders``, their ``line_items`` and ``addresses``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exists, select

from api import lookups
from api.errors import ApiError
from api.resources.common import (
    COUNTRY,
    CURRENCY_CODE,
    TIMESTAMPS,
    choices,
    plain_create,
    reference_attributes,
)
from api.resources.promotions import COUPON_CODE
from api.spec import Attribute, Context, Relationship, Resource, Trigger
from copying.errors import OrderStateError
from copying.orders import order_edits, placing
from copying.orders.transactions import PaymentDeclinedError
from models import (
    Address,
    FulfillmentStatus,
    ItemType,
    LineItem,
    Order,
    OrderStatus,
    PaymentStatus,
    utcnow,
)


def _place(ctx: Context, order_id: str, _: Any) -> None:
    with ctx.sessions.begin() as session:
        order_edits.refresh_before_placing(session, order_id, ctx.mode, utcnow())
    problems = placing.place_order(ctx.sessions, order_id, ctx.mode, gateways=ctx.gateways)
    if problems:
        raise ApiError(422, "; ".join(problems), pointer="/data/attributes/_place")


def _cancel(ctx: Context, order_id: str, _: Any) -> None:
    with _payment_errors("_cancel"):
        problems = placing.cancel_order(ctx.sessions, order_id, ctx.mode, gateways=ctx.gateways)
    if problems:
        raise ApiError(422, "; ".join(problems), pointer="/data/attributes/_cancel")


def _capture(ctx: Context, order_id: str, _: Any) -> None:
    with _payment_errors("_capture"):
        placing.capture_order(ctx.sessions, order_id, ctx.mode, gateways=ctx.gateways)


def _refund(ctx: Context, order_id: str, _: Any) -> None:
    with _payment_errors("_refund"):
        placing.refund_order(
            ctx.sessions, order_id, ctx.mode, None, field="_refund", gateways=ctx.gateways
        )


def _refund_amount(ctx: Context, order_id: str, amount_cents: Any) -> None:
    with _payment_errors("_refund_amount_cents"):
        placing.refund_order(
            ctx.sessions,
            order_id,
            ctx.mode,
            amount_cents,
            field="_refund_amount_cents",
            gateways=ctx.gateways,
        )


def _void(ctx: Context, order_id: str, _: Any) -> None:
    with _payment_errors("_void"):
        problems = placing.void_order(ctx.sessions, order_id, ctx.mode, gateways=ctx.gateways)
    if problems:
        raise ApiError(422, "; ".join(problems), pointer="/data/attributes/_void")


@contextmanager
def _payment_errors(trigger: str) -> Iterator[None]:
    """A payment trigger's wrong state (409) or decline (422), pointing at the trigger."""
    try:
        yield
    except OrderStateError as error:
        raise ApiError(
            409, str(error), code="INVALID_STATUS", pointer=f"/data/attributes/{trigger}"
        ) from None
    except PaymentDeclinedError as error:
        raise ApiError(422, str(error), pointer=f"/data/attributes/{trigger}") from None


def _check_order_update(ctx: Context, order: Order, names: set[str]) -> None:
    order_edits.check_update(ctx.session, order, names)


def _check_order_updated(ctx: Context, order: Order, names: set[str]) -> None:
    if "coupon_code" in names:
        order_edits.use_coupon(ctx.session, order, order.coupon_code, utcnow())


def _check_new_order(ctx: Context, values: dict[str, Any]) -> None:
    order_edits.check_coupon(
        ctx.session, ctx.mode, values.get("currency_code", ""), values.get("coupon_code"), utcnow()
    )


def _use_wallet_entry(ctx: Context, order_id: str, entry_id: Any) -> None:
    order = lookups.load(ctx.session, Order, "orders", order_id, ctx.mode, lock=True)
    order_edits.use_wallet_entry(ctx.session, order, entry_id, utcnow().date())


def _delete_order(ctx: Context, order: Order) -> None:
    order_edits.delete_order(ctx.session, order)


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
        CURRENCY_CODE,
        Attribute("subtotal_amount_cents", "integer", nullable=False),
        Attribute("shipping_amount_cents", "integer", nullable=False),
        Attribute("adjustment_amount_cents", "integer", nullable=False),
        Attribute(
            "discount_amount_cents",
            "integer",
            nullable=False,
            description="What its promotion lines take off (0 or less; the total stays >= 0).",
        ),
        Attribute("total_amount_cents", "integer", nullable=False, filterable=True, sortable=True),
        Attribute(
            "coupon_code",
            "string",
            writable="always",
            pattern=COUPON_CODE,
            filterable=True,
            description="A coupon of its promotion's (any case): checked when set.",
        ),
        Attribute(
            "frozen",
            "boolean",
            nullable=False,
            filterable=True,
            description="A copy's target as copied: prices and promotions stay until it is edited.",
        ),
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
        Relationship("authorizations", "authorizations", inverse="order_id"),
        Relationship("captures", "captures", inverse="order_id"),
        Relationship("voids", "voids", inverse="order_id"),
        Relationship("refunds", "refunds", inverse="order_id"),
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
            "true: cancel the order (releases stock; voids an uncaptured payment, refunds "
            "what is captured and not refunded)",
            transactional=False,
        ),
        Trigger(
            "_capture",
            "boolean",
            _capture,
            "true: capture the authorized payment in full (payment_status paid)",
            transactional=False,
        ),
        Trigger(
            "_refund",
            "boolean",
            _refund,
            "true: refund all that is captured and not yet refunded",
            transactional=False,
        ),
        Trigger(
            "_refund_amount_cents",
            "integer",
            _refund_amount,
            "refund this many cents of what is captured (partially_refunded, then refunded)",
            transactional=False,
        ),
        Trigger(
            "_void",
            "boolean",
            _void,
            "true: void the uncaptured authorization (payment_status voided)",
            transactional=False,
        ),
    ),
    create=plain_create(Order, defaults={"metadata_": {}}, check=_check_new_order),
    check_update=_check_order_update,
    check_updated=_check_order_updated,
    delete=_delete_order,
    extra_filters={"customer_id": "string"},
)


def _create_line(
    ctx: Context, attributes: dict[str, Any], related: dict[str, str | None]
) -> LineItem:
    order = order_edits.editable_order(ctx.session, related.get("order"), ctx.mode)
    # As Commerce Layer's: a line naming a bundle alone is a bundle line.
    alone = attributes.get("bundle_code") is not None and attributes.get("sku_code") is None
    return order_edits.add_line(
        ctx.session,
        order,
        item_type=ItemType(
            attributes.get("item_type") or (ItemType.BUNDLES if alone else ItemType.SKUS)
        ),
        quantity=attributes.get("quantity", 1),
        sku_code=attributes.get("sku_code"),
        bundle_code=attributes.get("bundle_code"),
        name=attributes.get("name") or "",
        unit_amount_cents=attributes.get("unit_amount_cents"),
        options=attributes.get("options"),
        metadata=attributes.get("metadata"),
        frequency=attributes.get("frequency"),
    )


def _delete_line(ctx: Context, line: LineItem) -> None:
    order = order_edits.editable_order(ctx.session, line.order_id, ctx.mode)
    order_edits.remove_line(ctx.session, order, line)


LINE_ITEMS = Resource(
    type="line_items",
    model=LineItem,
    attributes=(
        Attribute("sku_code", "string", writable="create", max_length=64, filterable=True),
        Attribute(
            "bundle_code",
            "string",
            writable="create",
            max_length=64,
            filterable=True,
            description="A bundle line's bundle (its name and price unless given); alone, "
            "it makes a bundle line.",
        ),
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
        Attribute(
            "frequency",
            "string",
            writable="create",
            max_length=64,
            filterable=True,
            description="A SKU line's (or a bundle line's naming its bundle) subscription "
            "frequency: a subscription of the order at that frequency renews the line as an "
            "order subscription item.",
        ),
        *TIMESTAMPS,
    ),
    relationships=(
        Relationship("order", "orders", column="order_id", writable="create", required=True),
        Relationship("promotion", "promotions", column="promotion_id"),
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


def _check_address_update(ctx: Context, address: Address, names: set[str]) -> None:
    order_edits.check_address_editable(ctx.session, address.id)


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
