"""Order subscription items: what a subscription in automatic mode renews (Commerce
Layer's ``order_subscription_items``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record


class OrderSubscriptionItem(Record, Base):
    """A SKU, its quantity and the unit amount each renewal charges for it.

    A subscription with items renews only them; one without renews its whole source
    order (``copying.subscriptions.subscription_items``)."""

    __tablename__ = "order_subscription_items"
    __table_args__ = (
        Index(
            "ix_order_subscription_items_order_subscription_id_created_at",
            "order_subscription_id",
            "created_at",
        ),
        Index("ix_order_subscription_items_source_line_item_id", "source_line_item_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_amount_cents >= 0", name="unit_amount_not_negative"),
    )

    id: Mapped[PublicId]
    order_subscription_id: Mapped[str] = mapped_column(
        ForeignKey("order_subscriptions.id", ondelete="CASCADE")
    )
    sku_code: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int]
    unit_amount_cents: Mapped[int]
    #: The line item it was made from (a line of the source order carrying the
    #: subscription's frequency), if any: None once that line is deleted.
    source_line_item_id: Mapped[str | None] = mapped_column(
        ForeignKey("line_items.id", ondelete="SET NULL")
    )
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
