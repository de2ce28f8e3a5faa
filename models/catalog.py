"""The minimal catalog a copy reprices against."""

from __future__ import annotations

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
