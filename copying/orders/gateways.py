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

from sqlalchemy import Connection, Dialect, Engine, func, select, update
from sqlalchemy.exc import DBAPIError

from copying.errors import TransientError
from models import TestGatewayCharge, TestGatewayTransaction, utcnow
from models.dialects import insert_ignoring_conflicts


@dataclass(frozen=True)
class GatewayAnswer:
    """A gateway's answer to an authorization, a capture or a refund. A falsy ``succeeded``
    is a business decline (``message`` says why; a soft one says so, :func:`soft_decline`);
    ``reference`` is the gateway's transaction token."""

    succeeded: bool
    reference: str | None
    message: str


class GatewayUnavailableError(TransientError):
    """The gateway did not answer (timeout, 5xx): ask again later with the same key."""


class PaymentGateway(Protocol):
    """A remote payment gateway. A worker process calls one from several threads at once
    (a chunk's calls, ``RunConfig.gateway_concurrency``): it must be thread-safe.

    Every call is remote (made with no database transaction of ours open) and idempotent
    by its key: the same key always gets the first answer, never a second charge. A call
    that gets no answer (timeout, connection error, 5xx, open circuit) raises
    :class:`GatewayUnavailableError`; a decline is an answer. ``order_id`` lets an
    implementation describe the order to its payment service (the test gateway ignores it).
    """

    def authorize(
        self,
        *,
        idempotency_key: str,
        order_id: str,
        token: str,
        amount_cents: int,
        currency_code: str,
    ) -> GatewayAnswer:
        """Hold ``amount_cents`` on ``token``."""
        ...

    def capture(
        self,
        *,
        idempotency_key: str,
        order_id: str,
        authorization_key: str,
        authorization_reference: str | None,
        amount_cents: int,
        currency_code: str,
    ) -> GatewayAnswer:
        """Take ``amount_cents`` of the hold authorized under ``authorization_key``."""
        ...

    def refund(
        self,
        *,
        idempotency_key: str,
        order_id: str,
        capture_key: str,
        capture_reference: str | None,
        amount_cents: int,
        currency_code: str,
    ) -> GatewayAnswer:
        """Give back ``amount_cents`` of the capture made under ``capture_key``."""
        ...

    def void(
        self, *, idempotency_key: str, order_id: str, authorization_reference: str | None
    ) -> None:
        """Release the hold authorized under ``idempotency_key`` (the *authorization's*
        key; an implementation needing a key of its own derives it, ``f"{key}:void"``).
        Voiding twice, a key never authorized (``authorization_reference`` may then be
        None) or a captured hold is a no-op."""
        ...


Gateways = Mapping[str, PaymentGateway]

#: A decline says whether asking again later may pass: a *soft* decline (insufficient
#: funds, issuer unavailable, velocity limit) says so with this phrase in its message; any
#: other decline is *hard* (stolen or closed card, do not honor, bad number), and retrying
#: the same card cannot pass. A real gateway's adapter maps its decline codes so
#: (docs/reliability.md); a subscription's dunning retries soft declines only.
SOFT_DECLINE = "soft decline"


def soft_decline(message: str) -> str:
    """A soft decline's message (:data:`SOFT_DECLINE`)."""
    return f"{message} ({SOFT_DECLINE}: asking again later may pass)"


def is_soft_decline(message: str) -> bool:
    """Whether a decline's message (or the error text that quotes it) says it is soft."""
    return f"({SOFT_DECLINE}:" in message


#: The test gateway's tokens and what they do (documented in the README).
TEST_TOKENS = {
    "tok_visa": "authorizes",
    "tok_declined": "is declined (a business error, never retried by itself): a hard decline",
    "tok_insufficient_funds": "is declined for insufficient funds: a soft decline",
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

    def __init__(self, engine: Callable[[], Engine], *, connections: int = 4) -> None:
        self._engine = engine  # a factory: the process's engine, also after a fork
        # The ledger's connections: at most ``connections`` calls record at once (a chunk's
        # calls go out several at a time, and each waits for its commit to be flushed).
        self._slots = threading.BoundedSemaphore(connections)
        self._idle: list[tuple[int, Engine, Connection]] = []
        self._idle_lock = threading.Lock()

    def _record_new(self, engine: Engine, sql: str, values: Any) -> bool:
        """Record a new key's charge; False if the key is known (nothing written).

        PostgreSQL: on one of the process's autocommit connections, kept open, so that the
        one statement most calls make costs its round trip and little else. SQLite: in a
        transaction of its own (its engine begins every transaction, also in autocommit).
        """
        if engine.dialect.name != "postgresql":
            with engine.begin() as conn:
                return conn.exec_driver_sql(sql, values).first() is not None
        with self._slots:
            ledger = None
            try:
                ledger = self._take_ledger(engine)
                recorded = ledger.exec_driver_sql(sql, values).first() is not None
            except DBAPIError as error:
                # Not reached, lost, or left unusable, and the idle ones likely with it (a
                # restart): the next calls connect anew.
                if ledger is not None:
                    _discard(ledger, os.getpid())
                self._close_idle()
                raise GatewayUnavailableError(f"test gateway: {error}") from error
            except BaseException:  # a time limit, say: the connection's state is unknown
                if ledger is not None:
                    _discard(ledger, os.getpid())
                raise
            with self._idle_lock:
                self._idle.append((os.getpid(), engine, ledger))
            return recorded

    def _close_idle(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for pid, _, connection in idle:
            _discard(connection, pid)

    def _take_ledger(self, engine: Engine) -> Connection:
        """An idle connection of this process's ``engine`` for recording new keys, or a
        new one, in autocommit, kept open after the call (a slot is held: at most
        ``connections`` exist per process)."""
        with self._idle_lock:
            while self._idle:
                pid, owner, connection = self._idle.pop()
                if (pid, owner) == (os.getpid(), engine):
                    return connection
                _discard(connection, pid)  # a parent's, or the engine was replaced
        connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            cursor = connection.connection.cursor()  # on the driver: not a copy's statement
            cursor.execute(f"SET application_name = '{LEDGER_APPLICATION}'")
            cursor.close()
        except engine.dialect.loaded_dbapi.Error as error:
            # The driver's own error (this statement is not SQLAlchemy's): a connection lost
            # as it was named (a restart) is the gateway being unavailable, as any other.
            _discard(connection, os.getpid())
            raise GatewayUnavailableError(f"test gateway: {error}") from error
        except BaseException:
            _discard(connection, os.getpid())
            raise
        # Never back to the pool (it is named): closed with the gateway, or when lost.
        weakref.finalize(self, _discard, connection, os.getpid())
        return connection

    def authorize(
        self,
        *,
        idempotency_key: str,
        order_id: str,
        token: str,
        amount_cents: int,
        currency_code: str,
    ) -> GatewayAnswer:
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
        charge_of_key = TestGatewayCharge.idempotency_key == idempotency_key
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

    def capture(
        self,
        *,
        idempotency_key: str,
        order_id: str,
        authorization_key: str,
        authorization_reference: str | None,
        amount_cents: int,
        currency_code: str,
    ) -> GatewayAnswer:
        return self._transact(
            "capture", idempotency_key, authorization_key, amount_cents, currency_code
        )

    def refund(
        self,
        *,
        idempotency_key: str,
        order_id: str,
        capture_key: str,
        capture_reference: str | None,
        amount_cents: int,
        currency_code: str,
    ) -> GatewayAnswer:
        return self._transact("refund", idempotency_key, capture_key, amount_cents, currency_code)

    def _transact(
        self, kind: str, key: str, parent_key: str, amount_cents: int, currency_code: str
    ) -> GatewayAnswer:
        """A capture (of the charge under ``parent_key``) or a refund (of the capture under
        it), answered once per key: its parent's row is locked while what is left of it is
        counted, so that concurrent keys never take more than it holds."""
        table = TestGatewayTransaction.__table__
        of_key = TestGatewayTransaction.idempotency_key == key
        with self._engine().begin() as conn:
            conn.execute(
                insert_ignoring_conflicts(conn.dialect, table, ["idempotency_key"]),
                {
                    "idempotency_key": key,
                    "kind": kind,
                    "parent_key": parent_key,
                    "amount_cents": amount_cents,
                    "currency_code": currency_code,
                    "failures": 0,
                    "created_at": utcnow(),
                },
            )
            row = conn.execute(select(table).where(of_key).with_for_update()).one()
            if row.outcome is not None:
                return GatewayAnswer(row.outcome == "succeeded", row.reference, row.message or "")
            charge = conn.execute(
                select(TestGatewayCharge.__table__).where(
                    TestGatewayCharge.idempotency_key == _charge_key(conn, row)
                )
            ).first()
            flaky = charge is not None and charge.token == "tok_flaky"
            if flaky and row.failures < FLAKY_FAILURES:
                conn.execute(
                    update(TestGatewayTransaction)
                    .where(of_key)
                    .values(failures=TestGatewayTransaction.failures + 1)
                )
            else:
                flaky = False
                answer = _transaction_answer(conn, row)
                conn.execute(
                    update(TestGatewayTransaction)
                    .where(of_key)
                    .values(
                        outcome="succeeded" if answer.succeeded else "declined",
                        reference=answer.reference,
                        message=answer.message,
                    )
                )
        if flaky:
            raise GatewayUnavailableError(f"test gateway: tok_flaky {kind} timed out")
        return answer

    def void(
        self, *, idempotency_key: str, order_id: str, authorization_reference: str | None
    ) -> None:
        of_key = TestGatewayCharge.idempotency_key == idempotency_key
        with self._engine().begin() as conn:
            # The charge's row lock orders this void with its captures (which take it too).
            charge = conn.execute(
                select(TestGatewayCharge.__table__).where(of_key).with_for_update()
            ).first()
            if charge is None or charge.outcome != "authorized" or charge.voided_at is not None:
                return
            if _taken(conn, "capture", idempotency_key):  # captured: nothing left to release
                return
            conn.execute(update(TestGatewayCharge).where(of_key).values(voided_at=utcnow()))


def _charge_key(conn: Connection, row: Any) -> str:
    """The key of the charge a capture or refund ``row`` comes from."""
    if row.kind == "capture":
        return str(row.parent_key)
    parent = conn.scalar(
        select(TestGatewayTransaction.parent_key).where(
            TestGatewayTransaction.idempotency_key == row.parent_key
        )
    )
    return str(parent or "")


def _taken(conn: Connection, kind: str, parent_key: str) -> int:
    """What the ``kind`` transactions that succeeded took of the one under ``parent_key``."""
    return int(
        conn.scalar(
            select(func.coalesce(func.sum(TestGatewayTransaction.amount_cents), 0)).where(
                TestGatewayTransaction.parent_key == parent_key,
                TestGatewayTransaction.kind == kind,
                TestGatewayTransaction.outcome == "succeeded",
            )
        )
        or 0
    )


def _transaction_answer(conn: Connection, row: Any) -> GatewayAnswer:
    """The answer to a new capture or refund ``row``, its parent locked while it is decided."""
    if row.kind == "capture":
        parent = conn.execute(
            select(TestGatewayCharge.__table__)
            .where(TestGatewayCharge.idempotency_key == row.parent_key)
            .with_for_update()
        ).first()
        if parent is None or parent.outcome != "authorized":
            return GatewayAnswer(False, None, f"no authorization under key {row.parent_key!r}")
        if parent.voided_at is not None:
            return GatewayAnswer(False, None, "the authorization was voided")
    else:
        parent = conn.execute(
            select(TestGatewayTransaction.__table__)
            .where(
                TestGatewayTransaction.idempotency_key == row.parent_key,
                TestGatewayTransaction.kind == "capture",
            )
            .with_for_update()
        ).first()
        if parent is None or parent.outcome != "succeeded":
            return GatewayAnswer(False, None, f"no capture under key {row.parent_key!r}")
    if parent.currency_code != row.currency_code:
        return GatewayAnswer(
            False, None, f"currency {row.currency_code} is not the {parent.currency_code} held"
        )
    left = parent.amount_cents - _taken(conn, row.kind, row.parent_key)
    if row.amount_cents > left:
        return GatewayAnswer(
            False, None, f"{row.kind} of {row.amount_cents} exceeds the {left} left to {row.kind}"
        )
    return GatewayAnswer(True, f"test_{secrets.token_hex(8)}", f"{row.kind} succeeded")


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
    return "authorized" if answer.succeeded else "declined"


def _answer_for(token: str) -> GatewayAnswer:
    if token in ("tok_visa", "tok_flaky"):
        return GatewayAnswer(True, f"test_{secrets.token_hex(8)}", "authorized")
    if token == "tok_declined":
        return GatewayAnswer(False, None, "card declined")
    if token == "tok_insufficient_funds":
        return GatewayAnswer(False, None, soft_decline("insufficient funds"))
    return GatewayAnswer(False, None, f"unknown payment source token {token!r}")
