"""Postal addresses (Commerce Layer's field names)."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record


class Address(Record, Base):
    __tablename__ = "addresses"

    id: Mapped[PublicId]
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    company: Mapped[str | None] = mapped_column(String(255))
    line_1: Mapped[str] = mapped_column(String(255))
    line_2: Mapped[str | None] = mapped_column(String(255))
    city: Mapped[str] = mapped_column(String(255))
    zip_code: Mapped[str | None] = mapped_column(String(32))
    state_code: Mapped[str | None] = mapped_column(String(32))
    country_code: Mapped[str] = mapped_column(String(2))
    phone: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(255))

    #: The columns a clone copies (everything but identity and timestamps).
    CLONED = (
        "mode",
        "first_name",
        "last_name",
        "company",
        "line_1",
        "line_2",
        "city",
        "zip_code",
        "state_code",
        "country_code",
        "phone",
        "email",
    )
