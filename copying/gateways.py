"""Payment gateways: one small interface, and the built-in test gateway.

A gateway is a *remote* system: it is called with no database transaction
of ours open, and it is idempotent by key, so a replayed authorization
returns the first answer and never charges twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from sqlalchemy import Dialect, Engine, select, update

from copying.errors import TransientError
from models import TestGatewayCharge, utcnow
from models.dialects import insert_ignoring_conflicts


@dataclass(frozen=True)
class GatewayAnswer:
    authorized: bool
    reference: str | None
    message: str


class GatewayUnavailableError(TransientError):
    """The gateway did not answer (timeout, 5xx): ask again later with the same key."""


class PaymentGateway(Protocol):
    def authorize(
        self, *, idempotency_key: str, token: str, amount_cents: int, currency_code: str
    ) -> GatewayAnswer:
        """Hold ``amount_cents``; the same key always gets the first answer."""
        ...

    def void(self, *, idempotency_key: str) -> None:
        """Release the hold made under ``idempotency_key``; voiding twice is a no-op."""
        ...


Gateways = Mapping[str, PaymentGateway]

#: The test gateway's tokens and what they do (documented in the README).
TEST_TOKENS = {
    "tok_visa": "authorizes",
    "tok_declined": "is declined (a business error, never retried by itself)",
    "tok_flaky": "fails transiently twice per idempotency key, then authorizes",
}
FLAKY_FAILURES = 2


class TestGateway:
    """Deterministic outcomes from the token, like card-network test numbers.

    Its ledger (``test_gateway_charges``) plays the remote side: it is written
    on the gateway's own connection, in its own short transactions.
    """

    __test__ = False  # not a pytest class
    name = "test"

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine  # a factory: the process's engine, also after a fork

    def authorize(
        self, *, idempotency_key: str, token: str, amount_cents: int, currency_code: str
    ) -> GatewayAnswer:
        charge_of_key = TestGatewayCharge.idempotency_key == idempotency_key
        # A new key whose token answers at once is answered by the one statement that
        # records it, on its own (autocommit): one round trip.
        immediate = None if token == "tok_flaky" else _answer_for(token)
        engine = self._engine()
        record = _record(engine.dialect)
        charge = {
            "idempotency_key": idempotency_key,
            "token": token,
            "amount_cents": amount_cents,
            "currency_code": currency_code,
            "created_at": utcnow(),
            "outcome": None if immediate is None else _outcome(immediate),
            "reference": None if immediate is None else immediate.reference,
            "message": None if immediate is None else immediate.message,
        }
        if immediate is not None:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                if conn.execute(record, charge).first() is not None:
                    return immediate
        with engine.begin() as conn:
            if immediate is None:
                conn.execute(record, charge)
            row = conn.execute(
                select(TestGatewayCharge.__table__).where(charge_of_key).with_for_update()
            ).one()
            if row.outcome is not None:
                return GatewayAnswer(row.outcome == "authorized", row.reference, row.message or "")
            if row.token == "tok_flaky" and row.failures < FLAKY_FAILURES:
                conn.execute(
                    update(TestGatewayCharge)
                    .where(charge_of_key)
                    .values(failures=TestGatewayCharge.failures + 1)
                )
                flaky = True
            else:
                flaky = False
                answer = _answer_for(row.token)
                conn.execute(
                    update(TestGatewayCharge)
                    .where(charge_of_key)
                    .values(
                        outcome=_outcome(answer),
                        reference=answer.reference,
                        message=answer.message,
                    )
                )
        if flaky:
            raise GatewayUnavailableError("test gateway: tok_flaky timed out")
        return answer

    def void(self, *, idempotency_key: str) -> None:
        with self._engine().begin() as conn:
            conn.execute(
                update(TestGatewayCharge)
                .where(
                    TestGatewayCharge.idempotency_key == idempotency_key,
                    TestGatewayCharge.outcome == "authorized",
                    TestGatewayCharge.voided_at.is_(None),
                )
                .values(voided_at=utcnow())
            )


@cache
def _record(dialect: Dialect) -> Any:
    """The ledger's INSERT of a new key (none if the key is known), built once per dialect:
    it is the gateway's one statement for most calls."""
    table = TestGatewayCharge.__table__
    return insert_ignoring_conflicts(dialect, table, ["idempotency_key"]).returning(
        table.c.idempotency_key
    )


def _outcome(answer: GatewayAnswer) -> str:
    return "authorized" if answer.authorized else "declined"


def _answer_for(token: str) -> GatewayAnswer:
    if token in ("tok_visa", "tok_flaky"):
        return GatewayAnswer(True, f"test_{secrets.token_hex(8)}", "authorized")
    if token == "tok_declined":
        return GatewayAnswer(False, None, "card declined")
    return GatewayAnswer(False, None, f"unknown payment source token {token!r}")
