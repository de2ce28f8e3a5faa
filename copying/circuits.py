"""Circuit breakers: what a call that went out changes on the row that made it.

Webhooks and external payment gateways share one breaker, Commerce Layer's: every call
that fails (no answer in time, a 5xx, an answer that cannot be read) counts one more
failure in a row, one that succeeds sets the count back to 0, and at
:data:`CIRCUIT_AFTER` failures in a row the circuit opens: no call is made until an
operator closes it (``_reset_circuit``). Each count is one UPDATE of the row, so
processes calling at once never lose a failure.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, update
from sqlalchemy.orm import Session

from models import CircuitState, ExternalGateway, Webhook
from models.circuits import Circuit

#: The tables with a circuit.
CircuitModel = type[Webhook] | type[ExternalGateway]

#: Failed calls in a row that open a circuit (Commerce Layer's number).
CIRCUIT_AFTER = 30


def record_success(session: Session, model: CircuitModel, row_id: str, now: datetime) -> None:
    """A call of ``row_id``'s went through: its run of failures ends. Does not commit."""
    session.execute(
        update(model)
        .where(model.id == row_id)
        .values(circuit_failure_count=0, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def record_failure(session: Session, model: CircuitModel, row_id: str, now: datetime) -> None:
    """A call of ``row_id``'s failed: one more in a row, and the circuit opens at
    :data:`CIRCUIT_AFTER`. Does not commit."""
    failures = model.circuit_failure_count + 1
    session.execute(
        update(model)
        .where(model.id == row_id)
        .values(
            circuit_failure_count=failures,
            circuit_state=case(
                (failures >= CIRCUIT_AFTER, CircuitState.OPEN.value),
                else_=model.circuit_state,
            ),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


def close(row: Circuit) -> None:
    """Close ``row``'s circuit (``_reset_circuit``): calls are made again. Does not commit."""
    row.circuit_state = CircuitState.CLOSED
    row.circuit_failure_count = 0
