"""Order subscription items: what a subscription in automatic mode renews (Commerce
Layer's ``order_subscription_items``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record, enum_column
from models.orders import ItemType

#: What an item may be: each names its own column (``sku_code``, ``bundle_code``,
#: ``adjustment_id``) and leaves the other two empty.
ITEM_TYPES = (ItemType.SKUS, ItemType.BUNDLES, ItemType.ADJUSTMENTS)


class OrderSubscriptionItem(Record, Base):
    """A SKU, a bundle or an adjustment, its quantity and the unit amount each renewal
    charges for it (an adjustment's may be negative: a discount).

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
        Index("ix_order_subscription_items_sku_id", "sku_id"),
        Index("ix_order_subscription_items_bundle_id", "bundle_id"),
        Index("ix_order_subscription_items_adjustment_id", "adjustment_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "unit_amount_cents >= 0 OR item_type = 'adjustments'", name="unit_amount_not_negative"
        ),
        CheckConstraint(
            "(item_type = 'skus' AND sku_code IS NOT NULL AND bundle_code IS NULL"
            " AND adjustment_id IS NULL)"
            " OR (item_type = 'bundles' AND bundle_code IS NOT NULL AND sku_code IS NULL"
            " AND adjustment_id IS NULL)"
            " OR (item_type = 'adjustments' AND adjustment_id IS NOT NULL AND sku_code IS NULL"
            " AND bundle_code IS NULL)",
            name="names_one_item",
        ),
    )

    id: Mapped[PublicId]
    order_subscription_id: Mapped[str] = mapped_column(
        ForeignKey("order_subscriptions.id", ondelete="CASCADE")
    )
    item_type: Mapped[ItemType] = mapped_column(
        enum_column(ItemType, "item_type"), default=ItemType.SKUS
    )
    sku_code: Mapped[str | None] = mapped_column(String(64))
    bundle_code: Mapped[str | None] = mapped_column(String(64))
    #: The catalog's row of ``sku_code`` / ``bundle_code`` when the item was made or its
    #: code last set (None once that row is deleted): what the ``sku`` and ``bundle``
    #: relationships show. Renewals look the code up, as copies do.
    sku_id: Mapped[str | None] = mapped_column(ForeignKey("skus.id", ondelete="SET NULL"))
    bundle_id: Mapped[str | None] = mapped_column(ForeignKey("bundles.id", ondelete="SET NULL"))
    #: An adjustment is named by its id (it has no code); it is not deleted while named.
    adjustment_id: Mapped[str | None] = mapped_column(
        ForeignKey("adjustments.id", ondelete="RESTRICT")
    )
    quantity: Mapped[int]
    unit_amount_cents: Mapped[int]
    #: The line item it was made from (a line of the source order carrying the
    #: subscription's frequency), if any: None once that line is deleted.
    source_line_item_id: Mapped[str | None] = mapped_column(
        ForeignKey("line_items.id", ondelete="SET NULL")
    )
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
