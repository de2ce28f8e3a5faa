"""The built-in test gateway's own ledger.

It stands for the remote side of a payment gateway: written on its own
connection, never inside a copy's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Timestamp


class TestGatewayCharge(Base):
    __tablename__ = "test_gateway_charges"
    __test__ = False  # not a pytest class

    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    token: Mapped[str] = mapped_column(String(255))
    amount_cents: Mapped[int]
    currency_code: Mapped[str] = mapped_column(String(3))
    #: Transient failures served so far for this key (``tok_flaky``).
    failures: Mapped[int] = mapped_column(default=0)
    outcome: Mapped[str | None] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(255))
    voided_at: Mapped[datetime | None]
    created_at: Mapped[Timestamp]


class TestGatewayTransaction(Base):
    """A capture or refund at the test gateway, by its idempotency key: a capture takes
    from the charge under ``parent_key``, a refund gives back from the capture under it."""

    __tablename__ = "test_gateway_transactions"
    __test__ = False  # not a pytest class
    __table_args__ = (Index("ix_test_gateway_transactions_parent_key", "parent_key"),)

    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    parent_key: Mapped[str] = mapped_column(String(255))
    amount_cents: Mapped[int]
    currency_code: Mapped[str] = mapped_column(String(3))
    #: Transient failures served so far for this key (the charge's token ``tok_flaky``).
    failures: Mapped[int] = mapped_column(default=0)
    #: ``succeeded`` or ``declined``; none until answered.
    outcome: Mapped[str | None] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[Timestamp]
