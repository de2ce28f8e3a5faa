"""Payment gateways: one small interface, and the built-in test gateway.

A gateway is a *remote* system: it is called with no database transaction
of ours open, and it is idempotent by key, so a replayed authorization
returns the first answer and never charges twice.
"""

from __future__ import annotations

import os
import secrets
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from sqlalchemy import Connection, Dialect, Engine, select, update
from sqlalchemy.exc import DBAPIError

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
    """A remote payment gateway. A worker process calls one from several threads at once
    (a chunk's calls, ``EngineConfig.gateway_concurrency``): it must be thread-safe."""

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
#: How the test gateway's own connection shows in ``pg_stat_activity``.
LEDGER_APPLICATION = "ordercopy test gateway"


class TestGateway:
    """Deterministic outcomes from the token, like card-network test numbers.

    Its ledger (``test_gateway_charges``) plays the remote side: it is written
    on the gateway's own connection, in its own short transactions.
    """

    __test__ = False  # not a pytest class
    name = "test"

    def __init__(self, engine: Callable[[], Engine]) -> None:
        self._engine = engine  # a factory: the process's engine, also after a fork
        self._ledger: tuple[int, Engine, Connection] | None = None
        self._ledger_lock = threading.Lock()  # one connection, one statement at a time

    def _record_new(self, engine: Engine, sql: str, values: Any) -> bool:
        """Record a new key's charge; False if the key is known (nothing written).

        PostgreSQL: on the process's autocommit connection, kept open, so that the one
        statement most calls make costs its round trip and little else. SQLite: in a
        transaction of its own (its engine begins every transaction, also in autocommit).
        """
        if engine.dialect.name == "postgresql":
            with self._ledger_lock:
                try:
                    recorded = self._ledger_connection(engine).exec_driver_sql(sql, values)
                    return recorded.first() is not None
                except DBAPIError as error:
                    self._close_ledger()  # lost, or left unusable: the next call connects anew
                    raise GatewayUnavailableError(f"test gateway: {error}") from error
        with engine.begin() as conn:
            return conn.exec_driver_sql(sql, values).first() is not None

    def _close_ledger(self) -> None:
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            _discard(ledger[2], ledger[0])

    def _ledger_connection(self, engine: Engine) -> Connection:
        """The process's connection for recording new keys, in autocommit, kept open (one:
        a web process calls from many threads; the lock makes them take turns)."""
        if self._ledger is not None and self._ledger[:2] == (os.getpid(), engine):
            return self._ledger[2]
        self._close_ledger()  # the process's engine was replaced
        connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        cursor = connection.connection.cursor()  # on the driver: not one of the copies' statements
        cursor.execute(f"SET application_name = '{LEDGER_APPLICATION}'")
        cursor.close()
        # Never back to the pool (it is named): closed with the gateway, or when lost.
        weakref.finalize(self, _discard, connection, os.getpid())
        self._ledger = (os.getpid(), engine, connection)
        return connection

    def authorize(
        self, *, idempotency_key: str, token: str, amount_cents: int, currency_code: str
    ) -> GatewayAnswer:
        charge_of_key = TestGatewayCharge.idempotency_key == idempotency_key
        # A new key whose token answers at once is answered by the one statement that
        # records it, on its own (autocommit): one round trip.
        immediate = None if token == "tok_flaky" else _answer_for(token)
        engine = self._engine()
        sql, order = _record(engine.dialect)
        charge = {
            "idempotency_key": idempotency_key,
            "token": token,
            "amount_cents": amount_cents,
            "currency_code": currency_code,
            "failures": 0,
            "outcome": None if immediate is None else _outcome(immediate),
            "reference": None if immediate is None else immediate.reference,
            "message": None if immediate is None else immediate.message,
            "voided_at": None,
            "created_at": utcnow(),
        }
        values = tuple(charge[name] for name in order) if order else charge
        if immediate is not None and self._record_new(engine, sql, values):
            return immediate
        with engine.begin() as conn:
            if immediate is None:
                conn.exec_driver_sql(sql, values)
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


def _discard(connection: Connection, pid: int) -> None:
    """Close the ledger's connection for good (it is named: it never goes back to the pool),
    in the process that opened it only: a forked child must not close its parent's."""
    if pid == os.getpid() and not connection.closed:
        connection.invalidate()
        connection.close()


@cache
def _record(dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """The ledger's INSERT of a new key (none if the key is known), compiled once per
    dialect, and the order of its parameters where they are positional: it is the
    gateway's one statement for most calls, sent as it is (no compiling, no caching)."""
    table = TestGatewayCharge.__table__
    statement = insert_ignoring_conflicts(dialect, table, ["idempotency_key"]).returning(
        table.c.idempotency_key
    )
    compiled = statement.compile(
        dialect=dialect, column_keys=[c.key for c in table.c if c.key != "id"]
    )
    return str(compiled), tuple(compiled.positiontup) if compiled.positional else None


def _outcome(answer: GatewayAnswer) -> str:
    return "authorized" if answer.authorized else "declined"


def _answer_for(token: str) -> GatewayAnswer:
    if token in ("tok_visa", "tok_flaky"):
        return GatewayAnswer(True, f"test_{secrets.token_hex(8)}", "authorized")
    if token == "tok_declined":
        return GatewayAnswer(False, None, "card declined")
    return GatewayAnswer(False, None, f"unknown payment source token {token!r}")
