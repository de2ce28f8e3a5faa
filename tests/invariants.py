"""The promises a copy keeps whatever happens, checked against the database.

:func:`check` returns the broken promises by invariant (the names of
:data:`INVARIANTS`); :func:`violations` flattens them into one list of
sentences. Both work on PostgreSQL and SQLite.

Most promises show in the final state. Two are about *how often* something
happened, which a final state cannot tell: a source order cancelled twice
is read from each copy's history (the checkpoint is written in the same
transaction as the cancellation), and, where :func:`install_audit` was run
(PostgreSQL only; the chaos suite does), triggers count every write that
cancels an order or voids a payment, so a second one is caught even if it
changed nothing visible.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, inspect, select, text
from sqlalchemy.orm import Session

from copying.copies.history import EventKind
from copying.orders.payments import LIVE
from models import (
    CopyStatus,
    CopyStep,
    Order,
    OrderCopy,
    OrderCopyEvent,
    OrderStatus,
    OrderSubscription,
    PaymentAuthorization,
    PaymentTransaction,
    Sku,
    TestGatewayCharge,
    TransactionKind,
    TransactionStatus,
)
from tests.money import HOLDING, bundle_stock_not_given_back, held_stock

#: Each invariant's name and the promise it stands for.
INVARIANTS: dict[str, str] = {
    "not_lost": "every copy a client was told exists is there",
    "finished": "every copy is completed, failed or aborted",
    "one_target": "at most one target order per copy; each completed copy has one",
    "one_authorization": "at most one live authorization per copy; none unless it asked to place",
    "source_cancelled_once": "no source order cancelled twice",
    "source_refunded": (
        "a source order a copy cancelled keeps nothing captured: what its payment captured"
        " is refunded, once"
    ),
    "voided_once": "no authorization voided twice, nor voided without being held",
    "stock_conserved": (
        "stock: initial - held by placed orders (their bundle lines' records included)"
        " = current, per SKU; no other order's bundle line records any"
    ),
    "errors_count": "errors_count equals the messages in errors_log",
    "period_renewed_once": "each subscription period renewed at most once",
}

AUDIT_TABLE = "invariant_audit"
#: Steps recorded in a copy's history events (claimed, checkpoint, completed, failed, ...).
_CANCELLED = CopyStep.SOURCE_CANCELLED.value
_CHUNK = 500


def violations(
    session: Session, copy_ids: Iterable[str], initial_stock: dict[str, int]
) -> list[str]:
    """Every broken promise, as a sentence; empty when all hold."""
    return [
        found
        for sentences in check(session, copy_ids, initial_stock).values()
        for found in sentences
    ]


def check(
    session: Session, copy_ids: Iterable[str], initial_stock: dict[str, int]
) -> dict[str, list[str]]:
    """The broken promises of ``copy_ids`` by invariant name (every name is present).

    A copy of ``copy_ids`` that does not exist was lost. ``initial_stock`` maps
    SKU codes to their stock before any order was placed;
    SKUs not named are not checked. Orders that are neither a source nor a
    target of these copies count as built by no copy.
    """
    ids = list(dict.fromkeys(copy_ids))
    found: dict[str, list[str]] = {name: [] for name in INVARIANTS}
    copies = [
        c
        for chunk in _chunks(ids)
        for c in session.scalars(select(OrderCopy).where(OrderCopy.id.in_(chunk)))
    ]
    missing = set(ids) - {c.id for c in copies}
    found["not_lost"] += [f"{copy_id} does not exist" for copy_id in sorted(missing)]
    _check_copies(copies, found)
    _check_targets(session, copies, found)
    _check_payments(session, copies, found)
    _check_cancellations(session, copies, found)
    _check_stock(session, initial_stock, found)
    _check_renewals(session, copies, found)
    _check_audit(session, found)
    return found


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


def _check_copies(copies: Sequence[OrderCopy], found: dict[str, list[str]]) -> None:
    for copy in copies:
        if copy.status in (CopyStatus.PENDING, CopyStatus.IN_PROGRESS):
            found["finished"].append(f"{copy.id} is still {copy.status}")
        if copy.status == CopyStatus.COMPLETED and copy.target_order_id is None:
            found["one_target"].append(f"{copy.id} completed without a target order")
        if copy.errors_count != sum(len(v) for v in copy.errors_log.values()):
            found["errors_count"].append(
                f"{copy.id} errors_count {copy.errors_count} != messages in errors_log"
            )


def _check_targets(
    session: Session, copies: Sequence[OrderCopy], found: dict[str, list[str]]
) -> None:
    shared = Counter(c.target_order_id for c in copies if c.target_order_id)
    for target, owners in sorted(shared.items()):
        if owners > 1:
            found["one_target"].append(f"order {target} is the target of {owners} copies")
    # Every order that is neither a source nor referenced by a copy is an orphan.
    sources = {c.source_order_id for c in copies}
    targets = set(shared)
    orphans = session.scalars(
        select(Order.id).where(
            Order.id.not_in(sources | targets) if sources | targets else Order.id.is_not(None)
        )
    ).all()
    if orphans:
        found["one_target"].append(f"orders built but owned by no copy: {sorted(orphans)}")


def _copy_of_key(key: str) -> str | None:
    """``order_copy:<id>:place[:n]`` → ``<id>``."""
    parts = key.split(":")
    return parts[1] if len(parts) >= 3 and parts[0] == "order_copy" else None


def _check_payments(
    session: Session, copies: Sequence[OrderCopy], found: dict[str, list[str]]
) -> None:
    wanted = {c.id for c in copies}
    held: Counter[str] = Counter()
    for key, status in session.execute(
        select(PaymentAuthorization.idempotency_key, PaymentAuthorization.status).where(
            PaymentAuthorization.idempotency_key.startswith("order_copy:")
        )
    ):
        copy_id = _copy_of_key(key)
        if copy_id in wanted and status in LIVE:
            held[copy_id] += 1
    # A key asked for by a run that was given up, then voided, is no hold: live ones count.
    charged: Counter[str] = Counter()
    for key, outcome, voided_at in session.execute(
        select(
            TestGatewayCharge.idempotency_key,
            TestGatewayCharge.outcome,
            TestGatewayCharge.voided_at,
        ).where(TestGatewayCharge.idempotency_key.startswith("order_copy:"))
    ):
        copy_id = _copy_of_key(key)
        if copy_id in wanted and outcome == "authorized" and voided_at is None:
            charged[copy_id] += 1
    for copy in copies:
        if held[copy.id] > 1 or charged[copy.id] > 1:
            found["one_authorization"].append(
                f"{copy.id} holds {held[copy.id]} authorizations, "
                f"the gateway charged {charged[copy.id]}"
            )
        if not copy.place_target_order and (held[copy.id] or charged[copy.id]):
            found["one_authorization"].append(f"{copy.id} did not ask to place but holds a payment")
    voided_unheld = session.scalars(
        select(TestGatewayCharge.idempotency_key).where(
            TestGatewayCharge.voided_at.is_not(None), TestGatewayCharge.outcome != "authorized"
        )
    ).all()
    if voided_unheld:
        found["voided_once"].append(f"voided without an authorization: {voided_unheld}")


def source_cancellations(session: Session, copy_ids: Sequence[str]) -> Counter[str]:
    """How many times each copy cancelled its source, read from its history.

    A run writes the step it reached with every event (claim, checkpoint,
    outcome) in the transaction that reached it; each move of a copy's step
    into ``source_cancelled`` is one cancellation.
    """
    step: dict[str, Any] = {}
    cancellations: Counter[str] = Counter()
    for chunk in _chunks(copy_ids):
        rows = session.execute(
            select(OrderCopyEvent.order_copy_id, OrderCopyEvent.data)
            .where(OrderCopyEvent.order_copy_id.in_(chunk))
            .order_by(OrderCopyEvent.id)
        )
        for copy_id, data in rows:
            if not isinstance(data, dict) or "step" not in data:
                continue
            if data["step"] == _CANCELLED and step.get(copy_id) != _CANCELLED:
                cancellations[copy_id] += 1
            step[copy_id] = data["step"]
    return cancellations


def _check_cancellations(
    session: Session, copies: Sequence[OrderCopy], found: dict[str, list[str]]
) -> None:
    cancellations = source_cancellations(session, [c.id for c in copies])
    by_source: defaultdict[str, list[str]] = defaultdict(list)
    for copy in copies:
        by_source[copy.source_order_id].extend([copy.id] * cancellations[copy.id])
    statuses = (
        dict(
            session.execute(
                select(Order.id, Order.status).where(Order.id.in_(list(by_source)))
            ).all()
        )
        if by_source
        else {}
    )
    for source, cancellers in sorted(by_source.items()):
        if len(cancellers) > 1:
            found["source_cancelled_once"].append(
                f"source order {source} cancelled {len(cancellers)} times (by {sorted(cancellers)})"
            )
        if cancellers and statuses.get(source) != OrderStatus.CANCELLED:
            found["source_cancelled_once"].append(
                f"{cancellers[0]} cancelled source order {source}, which is {statuses.get(source)}"
            )
    _check_refunds(session, sorted(s for s, cancellers in by_source.items() if cancellers), found)


def _check_refunds(session: Session, sources: list[str], found: dict[str, list[str]]) -> None:
    """Each source a copy cancelled: what its captures took, its refunds gave back."""
    moved: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for chunk in _chunks(sources):
        for order_id, kind, amount in session.execute(
            select(
                PaymentTransaction.order_id,
                PaymentTransaction.kind,
                func.sum(PaymentTransaction.amount_cents),
            )
            .where(
                PaymentTransaction.order_id.in_(chunk),
                PaymentTransaction.status == TransactionStatus.SUCCEEDED,
                PaymentTransaction.kind != TransactionKind.VOID,
            )
            .group_by(PaymentTransaction.order_id, PaymentTransaction.kind)
        ):
            moved[order_id][str(kind)] = int(amount)
    for source in sources:
        captured, refunded = moved[source]["capture"], moved[source]["refund"]
        if captured != refunded:
            found["source_refunded"].append(
                f"source order {source}, cancelled by a copy, captured {captured} cents and"
                f" refunded {refunded}"
            )


def _check_stock(
    session: Session, initial_stock: dict[str, int], found: dict[str, list[str]]
) -> None:
    # initial - what placed, not cancelled, orders hold (their bundle lines' records
    # included) = what is left; and no other order's bundle line records stock taken.
    held = held_stock(session, HOLDING)
    for code, quantity in session.execute(select(Sku.code, Sku.stock_quantity)):
        expected = initial_stock.get(code, quantity) - held.get(code, 0)
        if code in initial_stock and quantity != expected:
            found["stock_conserved"].append(f"SKU {code}: {quantity} in stock, expected {expected}")
    found["stock_conserved"] += bundle_stock_not_given_back(session, HOLDING, initial_stock)


def _check_renewals(
    session: Session, copies: Sequence[OrderCopy], found: dict[str, list[str]]
) -> None:
    subscription_ids = sorted({c.order_subscription_id for c in copies if c.order_subscription_id})
    if not subscription_ids:
        return
    renewals = session.execute(
        select(
            OrderCopy.order_subscription_id, OrderCopy.id, OrderCopy.period_key, OrderCopy.status
        ).where(OrderCopy.order_subscription_id.in_(subscription_ids))
    ).all()
    periods = Counter((sub, period) for sub, _, period, _ in renewals if period is not None)
    for (sub, period), count in sorted(periods.items()):
        if count > 1:
            found["period_renewed_once"].append(
                f"subscription {sub} period {period} has {count} renewal copies"
            )
    # ``occurrencies`` counts runs, failed or not, a renewal copy once (a retry of a failed
    # renewal does not count again): the renewal copies that ended at least once, as their
    # status or their history says (one retried after failing may be pending or aborted).
    ended = {CopyStatus.COMPLETED, CopyStatus.FAILED}
    ran = {(sub, copy_id) for sub, copy_id, _, status in renewals if status in ended}
    ran |= set(
        session.execute(
            select(OrderCopy.order_subscription_id, OrderCopy.id)
            .join(OrderCopyEvent, OrderCopyEvent.order_copy_id == OrderCopy.id)
            .where(
                OrderCopy.order_subscription_id.in_(subscription_ids),
                OrderCopyEvent.kind.in_([EventKind.COMPLETED, EventKind.FAILED]),
            )
        ).all()
    )
    runs = Counter(sub for sub, _ in ran)
    for sub, occurrencies in session.execute(
        select(OrderSubscription.id, OrderSubscription.occurrencies).where(
            OrderSubscription.id.in_(subscription_ids)
        )
    ):
        if occurrencies != runs[sub]:
            found["period_renewed_once"].append(
                f"subscription {sub} counts {occurrencies} runs, {runs[sub]} renewals ended"
            )


# --- audit triggers (PostgreSQL) --------------------------------------------------------


class _Audited(NamedTuple):
    table: str
    key: str
    column: str
    condition: str  # on the new row
    invariant: str


_AUDITED = {
    "order_cancelled": _Audited(
        "orders", "id", "status", "NEW.status = 'cancelled'", "source_cancelled_once"
    ),
    "authorization_voided": _Audited(
        "payment_authorizations", "id", "status", "NEW.status = 'voided'", "voided_once"
    ),
    "charge_voided": _Audited(
        "test_gateway_charges",
        "idempotency_key",
        "voided_at",
        "NEW.voided_at IS NOT NULL AND NEW.voided_at IS DISTINCT FROM OLD.voided_at",
        "voided_once",
    ),
}


def install_audit(connection: Connection) -> None:
    """Record every write that cancels an order or voids a payment (PostgreSQL only).

    Each trigger fires on an UPDATE that sets the column, whether or not the
    value changed, so a second cancellation or void is caught even when it
    rewrote the same value. Does not commit.
    """
    connection.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} ("
            " id bigserial PRIMARY KEY, kind text NOT NULL, row_id text NOT NULL,"
            " at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
    )
    for kind, audited in _AUDITED.items():
        connection.execute(
            text(
                f"CREATE OR REPLACE FUNCTION {AUDIT_TABLE}_{kind}() RETURNS trigger"
                f" LANGUAGE plpgsql AS $$ BEGIN"
                f" INSERT INTO {AUDIT_TABLE} (kind, row_id) VALUES ('{kind}', NEW.{audited.key});"
                f" RETURN NEW; END $$"
            )
        )
        connection.execute(text(f"DROP TRIGGER IF EXISTS {AUDIT_TABLE}_{kind} ON {audited.table}"))
        connection.execute(
            text(
                f"CREATE TRIGGER {AUDIT_TABLE}_{kind} AFTER UPDATE OF {audited.column}"
                f" ON {audited.table} FOR EACH ROW WHEN ({audited.condition})"
                f" EXECUTE FUNCTION {AUDIT_TABLE}_{kind}()"
            )
        )


def _check_audit(session: Session, found: dict[str, list[str]]) -> None:
    if not inspect(session.connection()).has_table(AUDIT_TABLE):
        return
    rows = session.execute(
        text(
            f"SELECT kind, row_id, count(*) FROM {AUDIT_TABLE}"
            " GROUP BY kind, row_id HAVING count(*) > 1 ORDER BY kind, row_id"
        )
    )
    for kind, row_id, count in rows:
        audited = _AUDITED[kind]
        found[audited.invariant].append(
            f"{audited.table} {row_id}: {kind.replace('_', ' ')} {count} times"
        )
