"""Promotions (a percentage or a fixed amount off, for a while, on some SKUs or all) and the
coupon codes that unlock them.

A promotion is one row whatever its kind (``kind``, Commerce Layer's type name): the kinds
are single-table subclasses, so a query of one kind finds only its rows.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record, enum_column


class PromotionKind(enum.StrEnum):
    PERCENTAGE_DISCOUNT = "percentage_discount_promotions"
    FIXED_AMOUNT = "fixed_amount_promotions"


class Promotion(Record, Base):
    __tablename__ = "promotions"
    __table_args__ = (
        # The promotions an order may get: those of its mode started by now.
        Index("ix_promotions_mode_starts_at", "mode", "starts_at"),
        CheckConstraint("expires_at > starts_at", name="window"),
        CheckConstraint(
            "(kind = 'percentage_discount_promotions' AND percentage BETWEEN 1 AND 100"
            " AND fixed_amount_cents IS NULL)"
            " OR (kind = 'fixed_amount_promotions' AND fixed_amount_cents > 0"
            " AND percentage IS NULL AND currency_code IS NOT NULL)",
            name="amount_fits_kind",
        ),
    )
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_abstract": True}

    id: Mapped[PublicId]
    kind: Mapped[PromotionKind] = mapped_column(enum_column(PromotionKind, "kind"))
    name: Mapped[str] = mapped_column(String(255))
    #: Orders in this currency only (None: any; a fixed amount always names one).
    currency_code: Mapped[str | None] = mapped_column(String(3))
    starts_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    percentage: Mapped[int | None]
    fixed_amount_cents: Mapped[int | None]
    #: The SKU codes it discounts (None: every SKU and bundle line).
    sku_codes: Mapped[list[str] | None]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


class PercentageDiscountPromotion(Promotion):
    __mapper_args__ = {"polymorphic_identity": PromotionKind.PERCENTAGE_DISCOUNT}


class FixedAmountPromotion(Promotion):
    __mapper_args__ = {"polymorphic_identity": PromotionKind.FIXED_AMOUNT}


class Coupon(Record, Base):
    """A code that unlocks its promotion for the order that carries it. A promotion with
    coupons applies only through one of them."""

    __tablename__ = "coupons"
    __table_args__ = (
        # Codes are case-insensitive: SUMMER10 and summer10 are one coupon per mode. Codes
        # are ASCII (the API's pattern), which lower() folds alike on every backend.
        Index("uq_coupons_mode_lower_code", "mode", text("lower(code)"), unique=True),
        Index("ix_coupons_promotion_id", "promotion_id"),
        CheckConstraint(
            "usage_count >= 0 AND (usage_limit IS NULL OR usage_count <= usage_limit)",
            name="usage_within_limit",
        ),
    )

    id: Mapped[PublicId]
    promotion_id: Mapped[str] = mapped_column(ForeignKey("promotions.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(64))
    #: How many orders may use it (None: any number).
    usage_limit: Mapped[int | None]
    #: The orders holding a use of it: placed (or being placed by a copy), not cancelled.
    usage_count: Mapped[int] = mapped_column(default=0, server_default="0")
    expires_at: Mapped[datetime | None]
