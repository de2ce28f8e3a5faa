"""Responses remembered under a client's ``Idempotency-Key`` (per API key)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record

#: How long a response is replayed; older rows are ignored, and purged by the sweeper.
KEEP_FOR = timedelta(hours=24)


class IdempotencyKey(Record, Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("api_key_id", "key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    id: Mapped[PublicId]
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int]
    response_body: Mapped[dict[str, Any]]
