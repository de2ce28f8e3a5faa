"""The external gateway's side of the money: the example endpoint's ledger against our rows.

A chaos run's external gateway points at examples/external_gateway, a process of the
stack that a fault SIGKILLs and restarts (tests/chaos/faults.py). Its SQLite ledger is
the merchant's record of what the payment service holds: one ``authorize`` row per key
it authorized (``voided`` once released), one ``capture`` or ``refund`` row per key it
made, naming its parent's reference. Once the run has settled they must agree with
ours, as the test gateway's ledger must (tests/money.py):

- every authorization of ours on the gateway recorded as ``authorized`` has exactly one
  live hold at the endpoint under its key, for its amount and reference (one recorded
  ``captured``, exactly one hold, captured there);
- no live hold at the endpoint that no row of ours keeps: each is recorded under its key
  as authorized on a placed or approved order, or as captured;
- every capture and refund the endpoint made is recorded as succeeded under its key for
  the same amount, and every one recorded as succeeded was made there.

The circuit breaker: an outage can open it (every failed call counts, a copy's retries
too). A copy that fails because it was open is a failed copy like any other; these
promises still hold, the runner resets the circuit once the faults stop (as an operator
would, ``_reset_circuit``) so that the sweeper can release what was left asked for.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import (
    AuthorizationStatus,
    Order,
    OrderStatus,
    PaymentAuthorization,
    PaymentTransaction,
    TransactionKind,
)
from tests.money import check_transactions_made

EXTERNAL_INVARIANTS: dict[str, str] = {
    "external_holds_agree": (
        "every authorization recorded as authorized (or captured) on the external gateway"
        " has exactly one live hold in the endpoint's ledger under its key, for its amount"
        " and reference; every live hold there is recorded so on a placed or approved order"
    ),
    "external_transactions_agree": (
        "every capture and refund the external gateway's endpoint made is recorded as"
        " succeeded under its key for the same amount, and every one recorded as succeeded"
        " was made there"
    ),
}

#: The endpoint's transaction types (its URLs: ``/authorize``, ...).
KINDS = ("authorize", "capture", "void", "refund")
HOLDING = frozenset({str(OrderStatus.PLACED), str(OrderStatus.APPROVED)})


@dataclass(frozen=True)
class Entry:
    """A row of the endpoint's ``transactions`` table."""

    reference: str
    kind: str  # authorize, capture, refund
    idempotency_key: str
    parent: str | None
    amount_cents: int
    voided: bool = False


@dataclass(frozen=True)
class Ours:
    """A payment row of ours on the gateway: an authorization, a capture or a refund."""

    idempotency_key: str
    kind: str  # authorize, capture, refund
    status: str
    amount_cents: int
    reference: str | None
    order_id: str
    order_status: str | None


def read_ledger(path: Path) -> list[Entry]:
    """The endpoint's ledger, read from its SQLite file (the endpoint need not be up)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute(
            "SELECT reference, kind, idempotency_key, parent, amount_cents, voided"
            " FROM transactions ORDER BY rowid"
        ).fetchall()
    finally:
        connection.close()
    return [Entry(r[0], r[1], r[2], r[3], int(r[4]), bool(r[5])) for r in rows]


def read_ours(session: Session, gateway_id: str) -> list[Ours]:
    """Our authorizations, captures and refunds on ``gateway_id``, with their orders' status."""
    statuses = {row.id: row.status for row in session.execute(select(Order.id, Order.status))}
    ours = [
        Ours(key, "authorize", str(status), amount, reference, order_id, None)
        for key, status, amount, reference, order_id in session.execute(
            select(
                PaymentAuthorization.idempotency_key,
                PaymentAuthorization.status,
                PaymentAuthorization.amount_cents,
                PaymentAuthorization.gateway_reference,
                PaymentAuthorization.order_id,
            ).where(PaymentAuthorization.gateway == gateway_id)
        )
    ]
    ours += [
        Ours(key, str(kind), str(status), amount, reference, order_id, None)
        for key, kind, status, amount, reference, order_id in session.execute(
            select(
                PaymentTransaction.idempotency_key,
                PaymentTransaction.kind,
                PaymentTransaction.status,
                PaymentTransaction.amount_cents,
                PaymentTransaction.gateway_reference,
                PaymentTransaction.order_id,
            ).where(
                PaymentTransaction.gateway == gateway_id,
                PaymentTransaction.kind != TransactionKind.VOID,
            )
        )
    ]
    return [
        Ours(
            o.idempotency_key,
            o.kind,
            o.status,
            o.amount_cents,
            o.reference,
            o.order_id,
            str(statuses[o.order_id]) if o.order_id in statuses else None,
        )
        for o in ours
    ]


def check(session: Session, gateway_id: str, ledger_path: Path) -> dict[str, list[str]]:
    """The broken promises by name (every name present), read after the run settled."""
    return compare(read_ours(session, gateway_id), read_ledger(ledger_path))


#: What the endpoint makes besides holds, compared both ways with our rows.
MADE = ("capture", "refund")


def compare(ours: Iterable[Ours], ledger: Iterable[Entry]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {name: [] for name in EXTERNAL_INVARIANTS}
    ours_by_key: dict[str, Ours] = {o.idempotency_key: o for o in ours}
    entries = list(ledger)
    holds: defaultdict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        if entry.kind == "authorize":
            holds[entry.idempotency_key].append(entry)
    captured = {e.parent for e in entries if e.kind == "capture"}
    _check_holds(ours_by_key, holds, captured, found["external_holds_agree"])
    check_transactions_made(
        {e.idempotency_key: (e.kind, e.amount_cents) for e in entries if e.kind in MADE},
        {key: mine for key, mine in ours_by_key.items() if mine.kind in MADE},
        found["external_transactions_agree"],
        where="endpoint",
    )
    return found


def _check_holds(
    ours: Mapping[str, Ours],
    holds: Mapping[str, list[Entry]],
    captured: set[str | None],
    promise: list[str],
) -> None:
    # Every live hold at the endpoint is one of ours, authorized on a holding order or
    # captured (and captured there).
    for key in sorted(holds):
        for entry in holds[key]:
            if entry.voided:
                continue
            held = f"the endpoint holds {entry.amount_cents} cents under {key} ({entry.reference})"
            mine = ours.get(key)
            if mine is None or mine.kind != "authorize":
                promise.append(f"{held}, which no row of ours records")
            elif mine.status == AuthorizationStatus.CAPTURED:
                if entry.reference not in captured:
                    promise.append(f"{held}, recorded as captured, but never captured there")
            elif entry.reference in captured:
                promise.append(f"{held} and captured it, but we record it as {mine.status}")
            elif mine.status != AuthorizationStatus.AUTHORIZED:
                promise.append(f"{held}, which order {mine.order_id} records as {mine.status}")
            elif mine.order_status not in HOLDING:
                promise.append(f"{held} for order {mine.order_id}, which is {mine.order_status}")
    # Every authorization of ours that holds money has exactly one live hold there.
    for key in sorted(ours):
        mine = ours[key]
        if mine.kind != "authorize" or mine.status not in (
            AuthorizationStatus.AUTHORIZED,
            AuthorizationStatus.CAPTURED,
        ):
            continue
        recorded = (
            f"authorization {key} of order {mine.order_id} is recorded as {mine.status}"
            f" ({mine.amount_cents} cents)"
        )
        live = [e for e in holds.get(key, []) if not e.voided]
        if len(live) != 1:
            at = len(holds.get(key, []))
            promise.append(
                f"{recorded}, but the endpoint has {len(live)} live holds under its key"
                f" ({at} in all)"
            )
            continue
        [hold] = live
        if hold.amount_cents != mine.amount_cents:
            promise.append(f"{recorded}, but the endpoint holds {hold.amount_cents} cents")
        elif hold.reference != mine.reference:
            promise.append(
                f"{recorded} with reference {mine.reference!r}, but the endpoint's hold is"
                f" {hold.reference!r}"
            )
