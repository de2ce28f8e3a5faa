"""The minimal catalog a copy reprices against: SKUs, and the bundles and adjustments a
subscription's items may name (Commerce Layer's ``bundles`` and ``adjustments``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record


class Sku(Record, Base):
    __tablename__ = "skus"
    __table_args__ = (
        UniqueConstraint("mode", "code"),
        CheckConstraint("unit_amount_cents >= 0", name="unit_amount_not_negative"),
        CheckConstraint("stock_quantity >= 0", name="stock_not_negative"),
    )

    id: Mapped[PublicId]
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    unit_amount_cents: Mapped[int]
    currency_code: Mapped[str] = mapped_column(String(3))
    stock_quantity: Mapped[int] = mapped_column(default=0)
    do_not_ship: Mapped[bool] = mapped_column(default=False)
    discontinued: Mapped[bool] = mapped_column(default=False)


class Bundle(Record, Base):
    """SKUs sold together at one price. A bundle has no stock of its own: a placed bundle
    line holds its SKUs' (``copying.orders.stock``), as its ``LineItemStock`` rows record."""

    __tablename__ = "bundles"
    __table_args__ = (
        UniqueConstraint("mode", "code"),
        CheckConstraint("price_amount_cents >= 0", name="price_amount_not_negative"),
        CheckConstraint("compare_at_amount_cents >= 0", name="compare_at_amount_not_negative"),
    )

    id: Mapped[PublicId]
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    currency_code: Mapped[str] = mapped_column(String(3))
    price_amount_cents: Mapped[int]
    compare_at_amount_cents: Mapped[int | None]
    #: Commerce Layer's sku list's items: ``[{"sku_code": "TEE", "quantity": 2}, ...]``.
    sku_list_items: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    discontinued: Mapped[bool] = mapped_column(default=False)


class Adjustment(Record, Base):
    """An amount added to (or, negative, taken off) an order: a fee, a discount."""

    __tablename__ = "adjustments"

    id: Mapped[PublicId]
    name: Mapped[str] = mapped_column(String(255))
    currency_code: Mapped[str] = mapped_column(String(3))
    amount_cents: Mapped[int]
    #: Commerce Layer's: a negative amount is spread over the lines for taxes (ordercopy
    #: computes no taxes; kept for clients that read it).
    distribute_discount: Mapped[bool] = mapped_column(default=False)
