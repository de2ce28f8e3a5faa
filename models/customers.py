"""Customers and their wallets (saved payment sources)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record


class Customer(Record, Base):
    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_mode_email", "mode", "email"),)

    id: Mapped[PublicId]
    email: Mapped[str] = mapped_column(String(255))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


class CustomerPaymentSource(Record, Base):
    """A wallet entry: a gateway token the customer agreed to reuse."""

    __tablename__ = "customer_payment_sources"

    id: Mapped[PublicId]
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    payment_method: Mapped[str] = mapped_column(String(32), default="credit_card")
    gateway: Mapped[str] = mapped_column(String(32), default="test")
    payment_source_token: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), default="")
    expires_on: Mapped[date | None]
    disabled: Mapped[bool] = mapped_column(default=False)
