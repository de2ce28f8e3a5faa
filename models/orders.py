"""Orders, their line items and payment authorizations."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Sequence,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from models.base import Base, PublicId, Record, enum_column


class OrderStatus(enum.StrEnum):
    DRAFT = "draft"
    PENDING = "pending"
    PLACED = "placed"
    APPROVED = "approved"
    CANCELLED = "cancelled"


class PaymentStatus(enum.StrEnum):
    UNPAID = "unpaid"
    AUTHORIZED = "authorized"
    #: Captured in full (``_capture``).
    PAID = "paid"
    VOIDED = "voided"
    #: Some of what was captured is refunded; ``refunded`` once all of it is.
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    FREE = "free"


class FulfillmentStatus(enum.StrEnum):
    UNFULFILLED = "unfulfilled"
    IN_PROGRESS = "in_progress"
    FULFILLED = "fulfilled"
    NOT_REQUIRED = "not_required"


class ItemType(enum.StrEnum):
    SKUS = "skus"
    BUNDLES = "bundles"
    GIFT_CARDS = "gift_cards"
    ADJUSTMENTS = "adjustments"
    SHIPMENTS = "shipments"
    PAYMENT_METHODS = "payment_methods"
    PROMOTIONS = "promotions"


class AuthorizationStatus(enum.StrEnum):
    #: Asked for (or about to be) and not yet answered: a hold that may exist at the
    #: gateway. Recorded before the call, so a process that dies during it leaves a row
    #: the sweeper finds and voids (``payments.void_abandoned``).
    REQUESTED = "requested"
    AUTHORIZED = "authorized"
    #: Held at the gateway but no longer wanted (its order was cancelled, or changed while
    #: it was asked for): the void is under way, and the sweeper finishes one left behind.
    VOIDING = "voiding"
    DECLINED = "declined"
    VOIDED = "voided"
    CAPTURED = "captured"


class TransactionKind(enum.StrEnum):
    CAPTURE = "capture"
    REFUND = "refund"
    VOID = "void"


class TransactionStatus(enum.StrEnum):
    #: Asked for (or about to be) and not yet answered: written before the gateway call,
    #: so a process that dies during it leaves a row the next request under the same key
    #: replays (a capture's or refund's) or the sweeper settles (a void's).
    REQUESTED = "requested"
    SUCCEEDED = "succeeded"
    #: Declined by the gateway (its message says why).
    FAILED = "failed"


ORDER_NUMBER_SEQUENCE = Sequence("orders_number_seq", start=10000, metadata=Base.metadata)


class next_order_number(FunctionElement[int]):
    """The next order number: a sequence on PostgreSQL; max + 1 on SQLite (one writer)."""

    type = BigInteger()
    inherit_cache = True


@compiles(next_order_number, "postgresql")
def _next_order_number_pg(element: next_order_number, compiler: SQLCompiler, **kw: Any) -> str:
    return f"nextval('{ORDER_NUMBER_SEQUENCE.name}')"


@compiles(next_order_number)
def _next_order_number_default(element: next_order_number, compiler: SQLCompiler, **kw: Any) -> str:
    return "(SELECT coalesce(max(number), 9999) + 1 FROM orders)"


class Order(Record, Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("number"),
        Index("ix_orders_customer_id", "customer_id"),
        Index("ix_orders_mode_created_at", "mode", "created_at"),
    )

    id: Mapped[PublicId]
    number: Mapped[int] = mapped_column(BigInteger, default=next_order_number())
    status: Mapped[OrderStatus] = mapped_column(
        enum_column(OrderStatus, "status"), default=OrderStatus.DRAFT
    )
    payment_status: Mapped[PaymentStatus] = mapped_column(
        enum_column(PaymentStatus, "payment_status"), default=PaymentStatus.UNPAID
    )
    fulfillment_status: Mapped[FulfillmentStatus] = mapped_column(
        enum_column(FulfillmentStatus, "fulfillment_status"),
        default=FulfillmentStatus.UNFULFILLED,
    )
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    customer_email: Mapped[str | None] = mapped_column(String(255))
    currency_code: Mapped[str] = mapped_column(String(3))
    billing_address_id: Mapped[str | None] = mapped_column(
        ForeignKey("addresses.id", ondelete="SET NULL")
    )
    shipping_address_id: Mapped[str | None] = mapped_column(
        ForeignKey("addresses.id", ondelete="SET NULL")
    )
    #: The wallet entry the payment source came from, if it came from the wallet.
    #: No foreign key on purpose: when the customer deletes the entry, the order
    #: still says where its payment came from, and a copy can say it is missing.
    customer_payment_source_id: Mapped[str | None] = mapped_column(String(10))
    payment_method: Mapped[str | None] = mapped_column(String(32))
    payment_gateway: Mapped[str | None] = mapped_column(String(32))
    payment_source_token: Mapped[str | None] = mapped_column(String(255))
    subtotal_amount_cents: Mapped[int] = mapped_column(default=0)
    shipping_amount_cents: Mapped[int] = mapped_column(default=0)
    adjustment_amount_cents: Mapped[int] = mapped_column(default=0)
    #: What its promotion lines take off (zero or negative), cut so that the total never
    #: goes below zero (``targets.totals``).
    discount_amount_cents: Mapped[int] = mapped_column(default=0, server_default="0")
    total_amount_cents: Mapped[int] = mapped_column(default=0)
    #: The coupon the customer entered (case-insensitive; checked when entered and each
    #: time the order's promotions are computed).
    coupon_code: Mapped[str | None] = mapped_column(String(64))
    #: A copy's target as copied: its prices and promotion lines stay as they were until
    #: its lines or coupon change (then it is refreshed, as any order edit refreshes one).
    frozen: Mapped[bool] = mapped_column(default=False, server_default=false())
    placed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    reference: Mapped[str | None] = mapped_column(String(255))
    reference_origin: Mapped[str | None] = mapped_column(String(255))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


class LineItem(Record, Base):
    __tablename__ = "line_items"
    __table_args__ = (
        Index("ix_line_items_order_id_position", "order_id", "position"),
        # The foreign key's lookups (a promotion deleted) only ever look for a set value.
        Index(
            "ix_line_items_promotion_id",
            "promotion_id",
            postgresql_where=text("promotion_id IS NOT NULL"),
            sqlite_where=text("promotion_id IS NOT NULL"),
        ),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[PublicId]
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    item_type: Mapped[ItemType] = mapped_column(enum_column(ItemType, "item_type"))
    sku_code: Mapped[str | None] = mapped_column(String(64))
    #: A bundle line's bundle (Commerce Layer's ``bundle_code``).
    bundle_code: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    quantity: Mapped[int] = mapped_column(default=1)
    #: The frequency of the subscription this line is for (Commerce Layer's): a
    #: subscription of the order with that frequency renews it as an item.
    frequency: Mapped[str | None] = mapped_column(String(64))
    #: The stock this line holds (taken when its order was placed or its copy reserved):
    #: what is given back, whatever the line says by then.
    reserved_quantity: Mapped[int] = mapped_column(default=0, server_default="0")
    unit_amount_cents: Mapped[int] = mapped_column(default=0)
    total_amount_cents: Mapped[int] = mapped_column(default=0)
    options: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    #: A promotion line: the promotion it applies (None once that is deleted).
    promotion_id: Mapped[str | None] = mapped_column(
        ForeignKey("promotions.id", ondelete="SET NULL")
    )
    #: A promotion line a coupon unlocked: its code. Placing takes one use of the coupon,
    #: recorded as the line's ``reserved_quantity`` (1), and cancelling gives it back.
    coupon_code: Mapped[str | None] = mapped_column(String(64))


class LineItemStock(Base):
    """What a bundle line took of one of its bundle's SKUs when its order was placed (its
    quantity times the SKU's in the bundle's list then): what is given back, whatever the
    bundle's list says by then. A SKU line records its own in ``reserved_quantity``."""

    __tablename__ = "line_item_stock"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    line_item_id: Mapped[str] = mapped_column(
        ForeignKey("line_items.id", ondelete="CASCADE"), primary_key=True
    )
    sku_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: A line's quantity times the bundle's: more than a 4-byte integer may hold.
    quantity: Mapped[int] = mapped_column(BigInteger)


class PaymentAuthorization(Record, Base):
    """One answer from a gateway, recorded under its idempotency key."""

    __tablename__ = "payment_authorizations"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        Index("ix_payment_authorizations_order_id", "order_id"),
        Index(
            "ix_payment_authorizations_unsettled_updated_at",
            "updated_at",
            postgresql_where=text("status IN ('requested', 'voiding')"),
            sqlite_where=text("status IN ('requested', 'voiding')"),
        ),
    )

    id: Mapped[PublicId]
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    amount_cents: Mapped[int]
    currency_code: Mapped[str] = mapped_column(String(3))
    gateway: Mapped[str] = mapped_column(String(32))
    gateway_reference: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[AuthorizationStatus] = mapped_column(enum_column(AuthorizationStatus, "status"))
    message: Mapped[str | None] = mapped_column(String(1024))
    voided_at: Mapped[datetime | None]


class PaymentTransaction(Record, Base):
    """A capture, refund or void of an authorization, recorded under its idempotency key.

    One table for the three kinds: they share every column, the one rule (written
    ``requested`` before the gateway call, settled after) and the one sweep; a refund
    also names the capture it gives back.
    """

    __tablename__ = "payment_transactions"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        Index("ix_payment_transactions_order_id", "order_id"),
        Index("ix_payment_transactions_authorization_id", "authorization_id"),
        Index("ix_payment_transactions_capture_id", "capture_id"),
        Index("ix_payment_transactions_mode_kind_created_at", "mode", "kind", "created_at"),
        CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
        CheckConstraint(
            "(kind = 'refund') = (capture_id IS NOT NULL)", name="refund_names_its_capture"
        ),
    )

    id: Mapped[PublicId]
    kind: Mapped[TransactionKind] = mapped_column(enum_column(TransactionKind, "kind"))
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    authorization_id: Mapped[str] = mapped_column(
        ForeignKey("payment_authorizations.id", ondelete="CASCADE")
    )
    #: A refund's capture (none for the other kinds).
    capture_id: Mapped[str | None] = mapped_column(
        ForeignKey("payment_transactions.id", ondelete="CASCADE")
    )
    amount_cents: Mapped[int]
    currency_code: Mapped[str] = mapped_column(String(3))
    gateway: Mapped[str] = mapped_column(String(32))
    gateway_reference: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[TransactionStatus] = mapped_column(enum_column(TransactionStatus, "status"))
    message: Mapped[str | None] = mapped_column(String(1024))
    #: When the gateway's answer was recorded (none while ``requested``).
    settled_at: Mapped[datetime | None]
