"""Order copies (the job rows) and their history."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    TextClause,
    UniqueConstraint,
    case,
    false,
    literal_column,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record, enum_column


class CopyStatus(enum.StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"


class CopyStep(enum.StrEnum):
    """Checkpoints, in the order a run reaches them."""

    TARGET_BUILT = "target_built"
    STOCK_RESERVED = "stock_reserved"
    TARGET_PLACED = "target_placed"
    SOURCE_CANCELLED = "source_cancelled"


#: A pending copy not waiting for a time (a retry's ``next_attempt_at``).
READY = text("status = 'pending' AND next_attempt_at IS NULL")
#: The predicates of the partial indexes below.
PENDING = text("status = 'pending'")
LEASED = text("status = 'in_progress'")
TARGETED = text("target_order_id IS NOT NULL")
COMPLETED_AT = text("completed_at IS NOT NULL")
REFERENCED = text("reference IS NOT NULL")
FAILED_AT = text("failed_at IS NOT NULL")


def _where(predicate: TextClause) -> dict[str, Any]:
    """An index's predicate, on both backends."""
    return {"postgresql_where": predicate, "sqlite_where": predicate}


class OrderCopy(Record, Base):
    """The copy row *is* the job: the broker only carries its id."""

    __tablename__ = "order_copies"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        UniqueConstraint("order_subscription_id", "period_key"),
        # A copy's row is written four times (queued, claimed, checkpoint, finished), each
        # version into every index that holds it: an index whose queries look for one
        # status or a set value holds only those versions (migration 0008). Queries must
        # spell such a status out (``literal_column``): a partial index is matched to
        # literal values, not to bound ones.
        # Pending copies by their last doorbell (the sweeper rings them again).
        Index("ix_order_copies_pending_dispatched_at", "dispatched_at", **_where(PENDING)),
        # Leased copies by lease end (the sweeper rescues those whose lease ran out).
        Index("ix_order_copies_leased_lease_expires_at", "lease_expires_at", **_where(LEASED)),
        # A source order's copies, newest first (its related list; the foreign key's lookups).
        Index("ix_order_copies_source_order_id", "source_order_id", "mode", "created_at"),
        # The foreign key's lookups (an order deleted) only ever look for a set value.
        Index("ix_order_copies_target_order_id", "target_order_id", **_where(TARGETED)),
        Index("ix_order_copies_mode_created_at", "mode", "created_at"),
        # Counts by status and the oldest pending copy (/metrics, ordercopy status), and
        # the API's most common list: one status, newest first.
        Index("ix_order_copies_mode_status_created_at", "mode", "status", "created_at"),
        # The API's other filters at a million copies (migration 0016): a reference as
        # given (btree) or a part of one (trigrams: pg_trgm's GIN, for ILIKE), and
        # errors_count (its ranges counted from the index alone, newest first in each).
        Index("ix_order_copies_mode_reference", "mode", "reference", **_where(REFERENCED)),
        Index(
            "ix_order_copies_reference_trigrams",
            "reference",
            postgresql_using="gin",
            postgresql_ops={"reference": "gin_trgm_ops"},
            **_where(REFERENCED),
        ),
        Index("ix_order_copies_mode_errors_count_created_at", "mode", "errors_count", "created_at"),
        # Completed copies' run times, read from the index alone (/metrics' histogram).
        Index(
            "ix_order_copies_mode_completed_at",
            "mode",
            "completed_at",
            "started_at",
            **_where(COMPLETED_AT),
        ),
        # Failed copies by failure time (the dashboard's charts): only failed copies' rows.
        Index("ix_order_copies_mode_failed_at", "mode", "failed_at", **_where(FAILED_AT)),
        # The copies a claim takes along (copy_states): pending, not waiting for a time.
        # Only these rows: copies waiting days for a renewal's retry are never scanned.
        Index("ix_order_copies_ready_dispatched_at", "dispatched_at", **_where(READY)),
    )

    id: Mapped[PublicId]
    status: Mapped[CopyStatus] = mapped_column(
        enum_column(CopyStatus, "status"), default=CopyStatus.PENDING
    )
    source_order_id: Mapped[str] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    target_order_id: Mapped[str | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL")
    )
    order_subscription_id: Mapped[str | None] = mapped_column(
        ForeignKey("order_subscriptions.id", ondelete="SET NULL")
    )
    #: The wallet entry to charge instead of the source order's (renewals). No
    #: foreign key, like ``orders.customer_payment_source_id``: a deleted entry
    #: must read as missing, not silently fall back to the source order's.
    customer_payment_source_id: Mapped[str | None] = mapped_column(String(10))
    place_target_order: Mapped[bool] = mapped_column(default=False)
    cancel_source_order: Mapped[bool] = mapped_column(default=False)
    reuse_wallet: Mapped[bool] = mapped_column(default=True)
    skip_errors: Mapped[bool] = mapped_column(default=False)
    apply_promotions: Mapped[bool] = mapped_column(default=False, server_default=false())
    ignore_invalid_coupon: Mapped[bool] = mapped_column(default=False, server_default=false())
    errors_log: Mapped[dict[str, Any]] = mapped_column(default=dict)
    errors_count: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    reference: Mapped[str | None] = mapped_column(String(255))
    reference_origin: Mapped[str | None] = mapped_column(String(255))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)

    # Internal: not shown by the API.
    #: Fencing token: bumped by every claim; every write of a run checks it.
    attempt: Mapped[int] = mapped_column(default=0)
    #: Claims since creation or the last retry; capped by settings.max_claims.
    claims: Mapped[int] = mapped_column(default=0)
    #: Retries of a failed copy so far (by ops, or by a renewal's failure policy).
    retries: Mapped[int] = mapped_column(default=0, server_default="0")
    lease_expires_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    #: Doorbells the sweeper rang again since the copy was created or last retried
    #: (each waits twice as long as the one before: see copying.copies.sweeper).
    dispatches: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Not to be claimed before this moment (a delayed retry).
    next_attempt_at: Mapped[datetime | None]
    step: Mapped[CopyStep | None] = mapped_column(enum_column(CopyStep, "step"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    #: The period a renewal renews (None: a copy asked for, not a renewal). A renewal
    #: keeps it when its subscription is deleted.
    period_key: Mapped[str | None] = mapped_column(String(64))

    @hybrid_property
    def copy_type(self) -> str:
        """``recurring_order_copies`` for a renewal, ``order_copies`` for a copy asked
        for: Commerce Layer's two types of copy (and ``/api/recurring_order_copies``)."""
        return RECURRING if self.period_key is not None else ASKED

    @copy_type.inplace.expression
    @classmethod
    def _copy_type(cls) -> ColumnElement[str]:
        return case((cls.period_key.is_not(None), RECURRING), else_=ASKED)


#: The two types of copy (``OrderCopy.copy_type``).
ASKED, RECURRING = "order_copies", "recurring_order_copies"


def status_is(status: CopyStatus) -> ColumnElement[bool]:
    """``status = '…'`` spelled out, not bound: a partial index is matched to the literal
    values of a statement (a bound one would leave a prepared statement's generic plan
    without it)."""
    return OrderCopy.status == literal_column(f"'{status.value}'")


class OrderCopyEvent(Record, Base):
    """One fact in a copy's history; never updated."""

    __tablename__ = "order_copy_events"
    __table_args__ = (
        Index("ix_order_copy_events_order_copy_id_id", "order_copy_id", "id"),
        # Created, completed and failed runs counted from the history (/metrics' counters).
        Index("ix_order_copy_events_kind_mode", "kind", "mode"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    order_copy_id: Mapped[str] = mapped_column(ForeignKey("order_copies.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
