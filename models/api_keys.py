"""API keys: only a hash of the token is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record


class ApiKey(Record, Base):
    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[PublicId]
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(128))
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
