"""External payment gateways: a merchant's endpoints that talk to their payment service."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, PublicId, Record
from models.circuits import Circuit

#: Bounds of ``timeout_seconds``: long enough for a payment service, short enough that a
#: chunk's calls (``ORDERCOPY_GATEWAY_CONCURRENCY`` at a time) stay within a task's limit.
TIMEOUT_SECONDS_DEFAULT = 10
TIMEOUT_SECONDS_MIN = 1
TIMEOUT_SECONDS_MAX = 60


class ExternalGateway(Circuit, Record, Base):
    """Commerce Layer's ``external_gateways``: one URL per transaction type, a shared secret
    that signs every request, and a circuit that opens after too many failed calls in a
    row. Its id is the name wallet entries, orders and payments give as their gateway."""

    __tablename__ = "external_gateways"
    __table_args__ = (
        CheckConstraint(
            f"timeout_seconds BETWEEN {TIMEOUT_SECONDS_MIN} AND {TIMEOUT_SECONDS_MAX}",
            name="timeout_seconds_in_bounds",
        ),
    )

    id: Mapped[PublicId]
    name: Mapped[str] = mapped_column(String(255))
    authorize_url: Mapped[str | None] = mapped_column(String(2048))
    capture_url: Mapped[str | None] = mapped_column(String(2048))
    void_url: Mapped[str | None] = mapped_column(String(2048))
    refund_url: Mapped[str | None] = mapped_column(String(2048))
    #: Stored, never called: ordercopy creates no customer payment tokens.
    token_url: Mapped[str | None] = mapped_column(String(2048))
    shared_secret: Mapped[str] = mapped_column(String(128))
    #: One request's time limit: connect, TLS, send and reading the answer.
    timeout_seconds: Mapped[int] = mapped_column(default=TIMEOUT_SECONDS_DEFAULT)
    reference: Mapped[str | None] = mapped_column(String(255))
    reference_origin: Mapped[str | None] = mapped_column(String(255))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
