"""Order subscriptions: the schedule that renews a source order, and its history."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    FunctionElement,
    Index,
    Integer,
    Sequence,
    String,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler

from models.base import Base, PublicId, Record, enum_column


class SubscriptionStatus(enum.StrEnum):
    DRAFT = "draft"
    #: No usable wallet entry to charge: nothing renews until one is attached and
    #: ``_activate`` is sent.
    PENDING = "pending"
    INACTIVE = "inactive"
    ACTIVE = "active"
    #: A renewal copy is queued or in progress.
    RUNNING = "running"
    CANCELLED = "cancelled"


SUBSCRIPTION_NUMBER_SEQUENCE = Sequence(
    "order_subscriptions_number_seq", start=1000, metadata=Base.metadata
)


class next_subscription_number(FunctionElement[int]):
    """The next subscription number: a sequence on PostgreSQL; max + 1 on SQLite (one
    writer)."""

    type = BigInteger()
    inherit_cache = True


@compiles(next_subscription_number, "postgresql")
def _next_number_pg(element: next_subscription_number, compiler: SQLCompiler, **kw: Any) -> str:
    return f"nextval('{SUBSCRIPTION_NUMBER_SEQUENCE.name}')"


@compiles(next_subscription_number)
def _next_number_default(
    element: next_subscription_number, compiler: SQLCompiler, **kw: Any
) -> str:
    return "(SELECT coalesce(max(number), 999) + 1 FROM order_subscriptions)"


class OrderSubscription(Record, Base):
    __tablename__ = "order_subscriptions"
    __table_args__ = (
        UniqueConstraint("number"),
        Index("ix_order_subscriptions_status_next_run_at", "status", "next_run_at"),
        # The renewal reminders owed (the tick reads them in order, a batch at a time).
        Index(
            "ix_order_subscriptions_renewal_alert_at",
            "renewal_alert_at",
            postgresql_where=text("renewal_alert_at IS NOT NULL"),
            sqlite_where=text("renewal_alert_at IS NOT NULL"),
        ),
    )

    id: Mapped[PublicId]
    number: Mapped[int] = mapped_column(BigInteger, default=next_subscription_number())
    source_order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    #: The source order's customer email, when the subscription was made.
    customer_email: Mapped[str | None] = mapped_column(String(255))
    customer_payment_source_id: Mapped[str | None] = mapped_column(
        ForeignKey("customer_payment_sources.id", ondelete="SET NULL")
    )
    frequency: Mapped[str] = mapped_column(String(64))
    status: Mapped[SubscriptionStatus] = mapped_column(
        enum_column(SubscriptionStatus, "status"), default=SubscriptionStatus.DRAFT
    )
    #: Made from a placed source order: start at once (the source is the first run).
    activate_by_source_order: Mapped[bool] = mapped_column(default=True, server_default=true())
    starts_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    occurrencies: Mapped[int] = mapped_column(default=0)
    errors_count: Mapped[int] = mapped_column(default=0)
    succeeded_on_last_run: Mapped[bool | None]
    #: When the failed renewal's retry is due (its failure policy's); None: none planned.
    next_attempt_at: Mapped[datetime | None]
    place_target_order: Mapped[bool] = mapped_column(default=True)
    #: After downtime, renew every missed period (true) or only the latest (false).
    catch_up: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Retry schedule and final action for failed renewals (default: none, stay active).
    failure_policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Hours before each run that its ``order_subscriptions.renewal`` reminder is sent.
    renewal_alert_period: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    #: When the reminder of the run at ``next_run_at`` is owed; None once it is sent (or
    #: while nothing renews).
    renewal_alert_at: Mapped[datetime | None]
    reference: Mapped[str | None] = mapped_column(String(255))
    reference_origin: Mapped[str | None] = mapped_column(String(255))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)

    @property
    def options(self) -> dict[str, Any]:
        """The options each renewal's copy runs with (Commerce Layer's ``options``)."""
        return {"place_target_order": self.place_target_order}

    @options.setter
    def options(self, value: Any) -> None:
        """Kept, unchecked, for the domain to check and apply
        (``subscription_states.apply_changes``): not stored as such."""
        setattr(self, OPTIONS_GIVEN, value)


#: Where ``OrderSubscription.options`` keeps the value last set (an instance attribute, not
#: a column).
OPTIONS_GIVEN = "_options_given"


class OrderSubscriptionEvent(Record, Base):
    """One fact in a subscription's history (skipped, pending, wallet switched, a renewal
    failed, a reminder sent); never updated."""

    __tablename__ = "order_subscription_events"
    __table_args__ = (
        Index(
            "ix_order_subscription_events_order_subscription_id_id",
            "order_subscription_id",
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    order_subscription_id: Mapped[str] = mapped_column(
        ForeignKey("order_subscriptions.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
