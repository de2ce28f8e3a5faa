"""Order subscriptions: the schedule that renews a source order."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record, enum_column


class SubscriptionStatus(enum.StrEnum):
    DRAFT = "draft"
    INACTIVE = "inactive"
    ACTIVE = "active"
    RUNNING = "running"
    CANCELLED = "cancelled"


class OrderSubscription(Record, Base):
    __tablename__ = "order_subscriptions"
    __table_args__ = (Index("ix_order_subscriptions_status_next_run_at", "status", "next_run_at"),)

    id: Mapped[PublicId]
    source_order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    customer_payment_source_id: Mapped[str | None] = mapped_column(
        ForeignKey("customer_payment_sources.id", ondelete="SET NULL")
    )
    frequency: Mapped[str] = mapped_column(String(64))
    status: Mapped[SubscriptionStatus] = mapped_column(
        enum_column(SubscriptionStatus, "status"), default=SubscriptionStatus.DRAFT
    )
    starts_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    occurrencies: Mapped[int] = mapped_column(default=0)
    errors_count: Mapped[int] = mapped_column(default=0)
    succeeded_on_last_run: Mapped[bool | None]
    place_target_order: Mapped[bool] = mapped_column(default=True)
    #: After downtime, renew every missed period (true) or only the latest (false).
    catch_up: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Retry schedule and final action for failed renewals (see the renewals issue).
    failure_policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reference: Mapped[str | None] = mapped_column(String(255))
    reference_origin: Mapped[str | None] = mapped_column(String(255))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
