"""A circuit breaker's columns, shared by everything that calls out: webhooks and
external payment gateways."""

from __future__ import annotations

import enum

from sqlalchemy.orm import Mapped, mapped_column

from models.base import enum_column


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    #: Too many calls in a row failed: none is made until ``_reset_circuit``.
    OPEN = "open"


class Circuit:
    """``circuit_state`` and ``circuit_failure_count`` (``copying.circuits`` keeps them)."""

    circuit_state: Mapped[CircuitState] = mapped_column(
        enum_column(CircuitState, "circuit_state"), default=CircuitState.CLOSED
    )
    #: Calls failed in a row (one that succeeds sets it back to 0).
    circuit_failure_count: Mapped[int] = mapped_column(default=0)
