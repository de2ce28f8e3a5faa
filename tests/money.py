"""The money promises, checked against the database after the fact.

Whatever raced (parallel requests, copies, faults), once things have settled an
order's money must add up: a placed or approved order holds exactly its total
in exactly one live authorization (none when it is free or voided; captured
once paid), no other order holds any, captures stay within what was authorized
and refunds within what was captured, the test gateway's ledger (its own record
of the holds, captures and refunds it made) agrees with ours, the stock taken is
the stock placed orders hold, and so are coupon uses.

:func:`check` returns the broken promises by name (the names of
:data:`MONEY_INVARIANTS`), each a sentence; :func:`violations` flattens them.
:func:`settle` waits, bounded, until nothing that moves money is under way (no
copy pending or in progress, no payment asked for or being voided), so that
the check reads a final state. Used by tests/races/, tests/test_money.py and
the chaos suite; works on PostgreSQL and SQLite.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import (
    AuthorizationStatus,
    CopyStatus,
    Coupon,
    CustomerPaymentSource,
    ItemType,
    LineItem,
    LineItemStock,
    Order,
    OrderCopy,
    OrderStatus,
    PaymentAuthorization,
    PaymentStatus,
    PaymentTransaction,
    Sku,
    TestGatewayCharge,
    TestGatewayTransaction,
    TransactionKind,
    TransactionStatus,
)

#: Each money promise's name and what it stands for.
MONEY_INVARIANTS: dict[str, str] = {
    "placed_orders_hold_their_total": (
        "every placed or approved order holds its total in exactly one live authorization"
        " (none, and payment_status free, when the total is zero)"
    ),
    "no_hold_off_placed_orders": "no draft, pending or cancelled order holds a live authorization",
    "captured_within_authorized": (
        "captures that succeeded take at most their authorization's amount, only of an"
        " authorization recorded as captured, and an order's payment_status says what they"
        " took (paid, partially_refunded or refunded once captured)"
    ),
    "refunded_within_captured": (
        "refunds that succeeded give back at most their capture's amount, per capture and per"
        " order; payment_status partially_refunded or refunded says how much; a cancelled"
        " order keeps nothing captured"
    ),
    "gateway_transactions_agree": (
        "every capture and refund that succeeded at the test gateway is recorded as succeeded"
        " under its key for the same amount, and every one recorded as succeeded there"
        " succeeded at the gateway"
    ),
    "gateway_agrees": (
        "every live hold at the gateway is recorded as authorized on a placed order (or as"
        " captured, and captured at the gateway), and every recorded one is live at the"
        " gateway for the amount recorded"
    ),
    "stock_matches_placed_lines": (
        "stock: initial - SKU quantities of placed orders - what their bundle lines recorded"
        " taking = current; no other order's bundle line records any"
    ),
    "placed_orders_pay_with_their_customers_wallet": (
        "every placed or approved order that names a wallet entry names one of its own"
        " customer and mode (or one deleted since)"
    ),
    "coupon_uses_match_placed_orders": (
        "each coupon's usage_count is the number of placed or approved orders whose promotion"
        " line it unlocked holds its use, never more than its usage_limit; only those hold one"
    ),
}

HOLDING = frozenset({OrderStatus.PLACED, OrderStatus.APPROVED})
#: The built-in test gateway: its ledger is the remote side we can read.
TEST_GATEWAY = "test"
#: Payment rows that say a gateway call or a void is under way.
UNDER_WAY = ("requested", "voiding")
UNFINISHED = (CopyStatus.PENDING, CopyStatus.IN_PROGRESS)


@dataclass(frozen=True)
class _Held:
    key: str
    order_id: str
    amount_cents: int
    currency_code: str
    gateway: str


def violations(session: Session, initial_stock: dict[str, int]) -> list[str]:
    """Every broken money promise, as a sentence; empty when all hold."""
    return [sentence for found in check(session, initial_stock).values() for sentence in found]


def check(session: Session, initial_stock: dict[str, int]) -> dict[str, list[str]]:
    """The broken money promises by name (every name is present), over the whole database.

    ``initial_stock`` maps SKU codes to their stock before any order took some; SKUs it
    does not name are not checked. Read after :func:`settle`: an order being placed or
    a copy between its steps legitimately holds what a final state may not.
    """
    found: dict[str, list[str]] = {name: [] for name in MONEY_INVARIANTS}
    orders = {
        row.id: row
        for row in session.execute(
            select(
                Order.id,
                Order.status,
                Order.payment_status,
                Order.total_amount_cents,
                Order.currency_code,
                Order.mode,
                Order.customer_id,
                Order.customer_payment_source_id,
                Order.payment_source_token,
            )
        )
    }
    held_by_order: defaultdict[str, list[_Held]] = defaultdict(list)
    captured_by_order: defaultdict[str, list[_Held]] = defaultdict(list)
    recorded: dict[str, tuple[str, str]] = {}  # key → (status, order id), every status
    for key, order_id, status, amount, currency, gateway in session.execute(
        select(
            PaymentAuthorization.idempotency_key,
            PaymentAuthorization.order_id,
            PaymentAuthorization.status,
            PaymentAuthorization.amount_cents,
            PaymentAuthorization.currency_code,
            PaymentAuthorization.gateway,
        )
    ):
        recorded[key] = (str(status), order_id)
        if status == AuthorizationStatus.AUTHORIZED:
            held_by_order[order_id].append(_Held(key, order_id, amount, currency, gateway))
        elif status == AuthorizationStatus.CAPTURED:
            captured_by_order[order_id].append(_Held(key, order_id, amount, currency, gateway))
    _check_orders(orders, held_by_order, captured_by_order, found)
    _check_gateway(session, orders, held_by_order, recorded, found)
    _check_transactions(session, orders, found)
    found["stock_matches_placed_lines"] = _stock(session, initial_stock)
    found["placed_orders_pay_with_their_customers_wallet"] = _wallets(session, orders)
    found["coupon_uses_match_placed_orders"] = _coupons(session)
    return found


def _money(cents: int, currency: str) -> str:
    return f"{cents} {currency}"


def _check_orders(
    orders: dict[str, Any],
    held_by_order: dict[str, list[_Held]],
    captured_by_order: dict[str, list[_Held]],
    found: dict[str, list[str]],
) -> None:
    for order_id in sorted(orders):
        order = orders[order_id]
        status, payment_status = OrderStatus(order.status), PaymentStatus(order.payment_status)
        total, currency = order.total_amount_cents, order.currency_code
        held = sorted(held_by_order.get(order_id, []), key=lambda h: h.key)
        if status in HOLDING and payment_status in AFTER_CAPTURE | {PaymentStatus.VOIDED}:
            # Captured (or voided) on request: what it holds is its captured authorization.
            _check_captured_order(order, held, captured_by_order.get(order_id, []), found)
            continue
        keys = [h.key for h in held]
        what = f"order {order_id} ({status}, total {_money(total, currency)})"
        if status not in HOLDING:
            for h in held:
                found["no_hold_off_placed_orders"].append(
                    f"{what} holds live authorization {h.key} of"
                    f" {_money(h.amount_cents, h.currency_code)}"
                )
            continue
        promise = found["placed_orders_hold_their_total"]
        if total == 0:
            if held:
                promise.append(f"{what} is free but holds authorizations {keys}")
            if payment_status != PaymentStatus.FREE:
                promise.append(f"{what} is free but its payment_status is {payment_status}")
            continue
        if not held:
            promise.append(f"{what} holds no live authorization")
        elif len(held) > 1:
            promise.append(f"{what} holds {len(held)} live authorizations: {keys}")
        else:
            [h] = held
            if (h.amount_cents, h.currency_code) != (total, currency):
                promise.append(
                    f"{what} holds {_money(h.amount_cents, h.currency_code)} under {h.key}"
                )
        if payment_status != PaymentStatus.AUTHORIZED:
            promise.append(f"{what} has payment_status {payment_status}, not authorized")


#: An order's payment statuses once its payment was captured.
AFTER_CAPTURE = frozenset(
    {PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
)


def _check_captured_order(
    order: Any, held: list[_Held], captured: list[_Held], found: dict[str, list[str]]
) -> None:
    """A placed order whose payment was captured holds exactly one captured authorization
    of its total and nothing authorized; one whose payment was voided holds neither."""
    promise = found["placed_orders_hold_their_total"]
    what = f"order {order.id} ({order.status}, payment {order.payment_status})"
    if held:
        promise.append(f"{what} still holds live authorizations {[h.key for h in held]}")
    if order.payment_status == PaymentStatus.VOIDED:
        if captured:
            promise.append(f"{what} has captured authorizations {[h.key for h in captured]}")
        return
    if len(captured) != 1:
        promise.append(f"{what} has {len(captured)} captured authorizations, not one")
    elif (captured[0].amount_cents, captured[0].currency_code) != (
        order.total_amount_cents,
        order.currency_code,
    ):
        promise.append(
            f"{what} captured an authorization of"
            f" {_money(captured[0].amount_cents, captured[0].currency_code)}, not its total"
        )


def _check_transactions(
    session: Session, orders: dict[str, Any], found: dict[str, list[str]]
) -> None:
    """Captures within authorizations, refunds within captures, payment statuses that say
    so, and the test gateway's captures and refunds are ours."""
    authorizations = {
        row.id: row
        for row in session.execute(
            select(
                PaymentAuthorization.id,
                PaymentAuthorization.order_id,
                PaymentAuthorization.amount_cents,
                PaymentAuthorization.status,
            )
        )
    }
    rows = session.execute(
        select(
            PaymentTransaction.id,
            PaymentTransaction.kind,
            PaymentTransaction.order_id,
            PaymentTransaction.authorization_id,
            PaymentTransaction.capture_id,
            PaymentTransaction.amount_cents,
            PaymentTransaction.status,
            PaymentTransaction.gateway,
            PaymentTransaction.idempotency_key,
        ).order_by(PaymentTransaction.idempotency_key)
    ).all()
    succeeded = [r for r in rows if r.status == TransactionStatus.SUCCEEDED]
    captures = [r for r in succeeded if r.kind == TransactionKind.CAPTURE]
    refunds = [r for r in succeeded if r.kind == TransactionKind.REFUND]
    captured: defaultdict[str, int] = defaultdict(int)  # by authorization, then by order
    for capture in captures:
        captured[capture.authorization_id] += capture.amount_cents
    for authorization_id in sorted(captured):
        authorization = authorizations[authorization_id]
        what = f"authorization {authorization_id} of order {authorization.order_id}"
        if captured[authorization_id] > authorization.amount_cents:
            found["captured_within_authorized"].append(
                f"{what} of {authorization.amount_cents} cents had"
                f" {captured[authorization_id]} captured"
            )
        if authorization.status != AuthorizationStatus.CAPTURED:
            found["captured_within_authorized"].append(
                f"{what} was captured but is recorded {authorization.status}"
            )
    refunded: defaultdict[str, int] = defaultdict(int)
    for refund in refunds:
        refunded[refund.capture_id] += refund.amount_cents
    amounts = {c.id: c for c in captures}
    for capture_id in sorted(refunded):
        capture = amounts.get(capture_id)
        if capture is None:
            found["refunded_within_captured"].append(
                f"{refunded[capture_id]} cents refunded of capture {capture_id}, which did not"
                " succeed"
            )
        elif refunded[capture_id] > capture.amount_cents:
            found["refunded_within_captured"].append(
                f"capture {capture_id} of order {capture.order_id} took"
                f" {capture.amount_cents} cents, {refunded[capture_id]} were refunded"
            )
    by_order: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in captures:
        by_order[r.order_id][0] += r.amount_cents
    for r in refunds:
        by_order[r.order_id][1] += r.amount_cents
    for order_id in sorted(orders):
        _check_payment_status(orders[order_id], *by_order.get(order_id, [0, 0]), found)
    _check_gateway_transactions(session, rows, found)


def _check_payment_status(
    order: Any, captured: int, refunded: int, found: dict[str, list[str]]
) -> None:
    status = PaymentStatus(order.payment_status)
    what = f"order {order.id} ({order.status}, payment {status})"
    if refunded > captured:
        found["refunded_within_captured"].append(
            f"{what} captured {captured} cents and refunded {refunded}"
        )
    expected = (
        None
        if captured == 0
        else PaymentStatus.PAID
        if refunded == 0
        else PaymentStatus.REFUNDED
        if refunded >= captured
        else PaymentStatus.PARTIALLY_REFUNDED
    )
    if expected is None and status in AFTER_CAPTURE:
        found["captured_within_authorized"].append(f"{what} has nothing captured")
    elif expected is not None and status != expected:
        found["captured_within_authorized" if refunded == 0 else "refunded_within_captured"].append(
            f"{what} captured {captured} cents and refunded {refunded}: it should be {expected}"
        )
    if order.status == OrderStatus.CANCELLED and captured > refunded:
        found["refunded_within_captured"].append(
            f"{what} is cancelled and keeps {captured - refunded} cents captured"
        )


def _check_gateway_transactions(session: Session, rows: Any, found: dict[str, list[str]]) -> None:
    ledger = session.execute(
        select(
            TestGatewayTransaction.idempotency_key,
            TestGatewayTransaction.kind,
            TestGatewayTransaction.amount_cents,
            TestGatewayTransaction.outcome,
        )
    ).all()
    check_transactions_made(
        {r.idempotency_key: (r.kind, r.amount_cents) for r in ledger if r.outcome == "succeeded"},
        {
            r.idempotency_key: r
            for r in rows
            if r.kind != TransactionKind.VOID and r.gateway == TEST_GATEWAY
        },
        found["gateway_transactions_agree"],
        where="gateway",
        answered={r.idempotency_key: r.outcome for r in ledger if r.outcome != "succeeded"},
    )


def check_transactions_made(
    made: Mapping[str, tuple[str, int]],
    ours: Mapping[str, Any],
    promise: list[str],
    *,
    where: str,
    answered: Mapping[str, str] | None = None,
) -> None:
    """The captures and refunds a gateway made agree with our rows of them, both ways:
    each one made (``made``: key → kind and cents) is recorded succeeded under its key for
    the same kind and amount, and each row recorded succeeded (``ours``: key → a row with
    kind, status, amount_cents and order_id) was made there (``answered``: key → what the
    gateway answered instead, where it answered). ``where`` names the gateway's side in
    what is appended to ``promise``."""
    for key in sorted(made):
        kind, amount = made[key]
        mine = ours.get(key)
        what = f"the {where} made a {kind} of {amount} cents under {key}"
        if mine is None or mine.kind != kind:
            promise.append(f"{what}, which no row records")
        elif mine.status != TransactionStatus.SUCCEEDED:
            promise.append(f"{what}, which is recorded {mine.status}")
        elif mine.amount_cents != amount:
            promise.append(f"{what}, which is recorded as {mine.amount_cents} cents")
    for key in sorted(ours):
        mine = ours[key]
        if mine.status != TransactionStatus.SUCCEEDED or key in made:
            continue
        instead = (answered or {}).get(key)
        promise.append(
            f"{mine.kind} {key} of order {mine.order_id} is recorded as succeeded, but the"
            f" {where} {f'answered {instead}' if instead else 'never made it'}"
        )


def _check_gateway(
    session: Session,
    orders: dict[str, Any],
    held_by_order: dict[str, list[_Held]],
    recorded: dict[str, tuple[str, str]],
    found: dict[str, list[str]],
) -> None:
    promise = found["gateway_agrees"]
    ledger: dict[str, tuple[str | None, datetime | None, int, str, str]] = {}
    for key, outcome, voided_at, amount, currency, token in session.execute(
        select(
            TestGatewayCharge.idempotency_key,
            TestGatewayCharge.outcome,
            TestGatewayCharge.voided_at,
            TestGatewayCharge.amount_cents,
            TestGatewayCharge.currency_code,
            TestGatewayCharge.token,
        )
    ):
        ledger[key] = (outcome, voided_at, amount, currency, token)
    captured_at_gateway = set(
        session.scalars(
            select(TestGatewayTransaction.parent_key).where(
                TestGatewayTransaction.kind == "capture",
                TestGatewayTransaction.outcome == "succeeded",
            )
        )
    )
    # Every live hold at the gateway is one a placed order records as authorized (or
    # captured, and captured there).
    for key in sorted(ledger):
        outcome, voided_at, amount, currency, _ = ledger[key]
        if outcome != "authorized" or voided_at is not None:
            continue
        held = f"the gateway holds {_money(amount, currency)} under {key}"
        if key not in recorded:
            promise.append(f"{held}, which no order records")
            continue
        status, order_id = recorded[key]
        order_status = getattr(orders.get(order_id), "status", None)
        if status == AuthorizationStatus.CAPTURED:
            if key not in captured_at_gateway:
                promise.append(f"{held}, recorded as captured, but the gateway never captured it")
            continue
        if key in captured_at_gateway:
            promise.append(f"{held} and captured it, but order {order_id} records it as {status}")
        elif status != AuthorizationStatus.AUTHORIZED:
            promise.append(f"{held}, which order {order_id} records as {status}")
        elif order_status not in HOLDING:
            promise.append(f"{held} for order {order_id}, which is {order_status}")
    # Every hold we record at the test gateway is live there, for what we recorded.
    for order_id in sorted(held_by_order):
        for h in sorted(held_by_order[order_id], key=lambda h: h.key):
            if h.gateway != TEST_GATEWAY:
                continue
            recorded_as = (
                f"authorization {h.key} of order {order_id} is recorded as"
                f" {_money(h.amount_cents, h.currency_code)} authorized"
            )
            if h.key not in ledger:
                promise.append(f"{recorded_as}, but the gateway never charged that key")
                continue
            outcome, voided_at, amount, currency, token = ledger[h.key]
            order = orders.get(order_id)
            # The source it pays with, where that is what the hold must have been made on.
            paying_with = (
                order.payment_source_token
                if order is not None and order.status in HOLDING and order.total_amount_cents
                else token
            )
            if outcome != "authorized":
                promise.append(f"{recorded_as}, but the gateway answered {outcome}")
            elif voided_at is not None:
                promise.append(f"{recorded_as}, but the gateway voided it")
            elif (amount, currency) != (h.amount_cents, h.currency_code):
                promise.append(f"{recorded_as}, but the gateway holds {_money(amount, currency)}")
            elif token != paying_with:
                promise.append(
                    f"{recorded_as}, but the gateway holds it on token {token!r} while the"
                    f" order pays with {paying_with!r}"
                )


def held_stock(session: Session, holding: frozenset[OrderStatus]) -> dict[str, int]:
    """What orders of ``holding`` statuses hold of each SKU: their SKU lines' quantities,
    and what their bundle lines recorded taking of their bundles' SKUs."""
    held: defaultdict[str, int] = defaultdict(int)
    for code, quantity in session.execute(
        select(LineItem.sku_code, func.sum(LineItem.quantity))
        .join(Order, Order.id == LineItem.order_id)
        .where(LineItem.item_type == ItemType.SKUS, Order.status.in_(holding))
        .group_by(LineItem.sku_code)
    ):
        held[code] += int(quantity)
    for code, quantity in session.execute(
        select(LineItemStock.sku_code, func.sum(LineItemStock.quantity))
        .join(LineItem, LineItem.id == LineItemStock.line_item_id)
        .join(Order, Order.id == LineItem.order_id)
        .where(Order.status.in_(holding))
        .group_by(LineItemStock.sku_code)
    ):
        held[code] += int(quantity)
    return dict(held)


def bundle_stock_not_given_back(
    session: Session, holding: frozenset[OrderStatus], codes: Iterable[str]
) -> list[str]:
    """Bundle lines of orders not of ``holding`` statuses that still record stock taken
    of a SKU of ``codes``."""
    return [
        f"bundle line {line_id} of {status} order {order_id} records {quantity} of SKU {code}"
        for line_id, order_id, status, code, quantity in session.execute(
            select(
                LineItem.id,
                Order.id,
                Order.status,
                LineItemStock.sku_code,
                LineItemStock.quantity,
            )
            .join(LineItem, LineItem.id == LineItemStock.line_item_id)
            .join(Order, Order.id == LineItem.order_id)
            .where(Order.status.not_in(holding), LineItemStock.sku_code.in_(list(codes)))
            .order_by(LineItem.id, LineItemStock.sku_code)
        )
    ]


def _stock(session: Session, initial_stock: dict[str, int]) -> list[str]:
    held = held_stock(session, HOLDING)
    current = dict(
        session.execute(
            select(Sku.code, Sku.stock_quantity).where(Sku.code.in_(list(initial_stock)))
        ).all()
    )
    found = []
    for code in sorted(initial_stock):
        if code not in current:
            found.append(f"SKU {code} no longer exists")
            continue
        expected = initial_stock[code] - int(held.get(code) or 0)
        if current[code] != expected:
            found.append(
                f"SKU {code}: {current[code]} in stock, expected {expected}"
                f" ({initial_stock[code]} at first, {held.get(code) or 0} on placed orders)"
            )
    return found + bundle_stock_not_given_back(session, HOLDING, initial_stock)


def _coupons(session: Session) -> list[str]:
    found = []
    held: defaultdict[tuple[str, str], int] = defaultdict(int)
    for order_id, status, mode, code, reserved in session.execute(
        select(
            LineItem.order_id,
            Order.status,
            Order.mode,
            LineItem.coupon_code,
            LineItem.reserved_quantity,
        )
        .join(Order, Order.id == LineItem.order_id)
        .where(LineItem.item_type == ItemType.PROMOTIONS, LineItem.coupon_code.is_not(None))
        .order_by(LineItem.order_id)
    ):
        holding = status in HOLDING
        if holding and reserved != 1:
            found.append(f"placed order {order_id}'s line of coupon {code} holds {reserved} uses")
        elif not holding and reserved:
            found.append(f"order {order_id} ({status}) holds a use of coupon {code}")
        if holding and reserved:
            held[str(mode), code.lower()] += 1
    for mode, code, count, limit in session.execute(
        select(Coupon.mode, Coupon.code, Coupon.usage_count, Coupon.usage_limit).order_by(
            Coupon.code
        )
    ):
        placed = held.pop((str(mode), code.lower()), 0)
        if count != placed:
            found.append(f"coupon {code} counts {count} uses, placed orders hold {placed}")
        if limit is not None and count > limit:
            found.append(f"coupon {code} counts {count} uses, more than its limit {limit}")
    found += [
        f"placed orders hold {n} uses of coupon {c}, which is gone" for (_, c), n in held.items()
    ]
    return found


def _wallets(session: Session, orders: dict[str, Any]) -> list[str]:
    named = {
        order_id: order
        for order_id, order in orders.items()
        if order.status in HOLDING and order.customer_payment_source_id is not None
    }
    entries = {
        row.id: row
        for row in session.execute(
            select(
                CustomerPaymentSource.id,
                CustomerPaymentSource.customer_id,
                CustomerPaymentSource.mode,
            ).where(
                CustomerPaymentSource.id.in_({o.customer_payment_source_id for o in named.values()})
            )
        )
    }
    found = []
    for order_id in sorted(named):
        order = named[order_id]
        entry_id = order.customer_payment_source_id
        entry = entries.get(entry_id)
        what = f"order {order_id} ({order.status}) pays with wallet entry {entry_id}"
        # A placed order keeps naming an entry deleted since: where its payment came from.
        if entry is None:
            continue
        if entry.customer_id != order.customer_id:
            found.append(
                f"{what} of customer {entry.customer_id}, but the order is customer"
                f" {order.customer_id}'s"
            )
        elif entry.mode != order.mode:
            found.append(f"{what} of {entry.mode} mode, but the order is in {order.mode} mode")
    return found


# --- settling ---------------------------------------------------------------------------


def under_way(session: Session) -> list[str]:
    """What still moves money: copies pending or in progress, payments, captures and
    refunds asked for and not answered, or being voided. Empty once everything has
    settled."""
    copies = session.execute(
        select(OrderCopy.id, OrderCopy.status, OrderCopy.step)
        .where(OrderCopy.status.in_(UNFINISHED))
        .order_by(OrderCopy.id)
    ).all()
    # Where the schema knows these statuses (a payment is written down before its call).
    statuses = [s for s in UNDER_WAY if s in {a.value for a in AuthorizationStatus}]
    payments = (
        session.execute(
            select(PaymentAuthorization.idempotency_key, PaymentAuthorization.status)
            .where(PaymentAuthorization.status.in_(statuses))
            .order_by(PaymentAuthorization.idempotency_key)
        ).all()
        if statuses
        else []
    )
    transactions = session.execute(
        select(PaymentTransaction.idempotency_key, PaymentTransaction.kind)
        .where(PaymentTransaction.status == TransactionStatus.REQUESTED)
        .order_by(PaymentTransaction.idempotency_key)
    ).all()
    return (
        [f"order copy {i} is still {status} (step {step})" for i, status, step in copies]
        + [f"payment {key} is still {status}" for key, status in payments]
        + [f"{kind} {key} is still requested" for key, kind in transactions]
    )


def settle(
    sessions: sessionmaker[Session],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Wait until nothing moves money any more (:func:`under_way` is empty), polling
    every ``interval`` seconds for at most ``timeout``. Returns what was still under way
    when it gave up, as sentences (empty: settled)."""
    deadline = clock() + timeout
    while True:
        with sessions() as session:
            left = under_way(session)
        if not left or clock() >= deadline:
            return [f"not settled after {timeout:g} s: {sentence}" for sentence in left]
        time.sleep(interval)


def settle_and_check(
    sessions: sessionmaker[Session], initial_stock: dict[str, int], *, timeout: float = 30.0
) -> list[str]:
    """:func:`settle`, then :func:`violations`: what is still under way, then every broken
    money promise. Empty when everything settled and every promise holds."""
    unsettled = settle(sessions, timeout=timeout)
    with sessions() as session:
        return unsettled + violations(session, initial_stock)
