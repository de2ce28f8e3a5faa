"""The world a chaos run copies: a catalog with scarce stock, customers and wallets,
source orders of every shape, subscriptions, and the copies to ask for.

Everything random comes from the run's seeded ``random.Random``, so a seed
names the same world and the same copies every time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from copying.errors import TransientError
from copying.orders import order_states, placing
from copying.orders.gateways import Gateways
from models import (
    Customer,
    FulfillmentStatus,
    ItemType,
    Mode,
    Order,
    OrderStatus,
    PaymentStatus,
    Sku,
    utcnow,
)
from tests.factories import (
    Line,
    make_customer,
    make_order,
    make_sku,
    make_subscription,
    make_wallet_entry,
)

#: Source order shapes and their weights: each is a way for a copy to succeed or fail.
SOURCE_KINDS: dict[str, int] = {
    "visa": 30,  # placed, wallet tok_visa: copies complete while stock lasts
    "flaky": 8,  # placed, wallet tok_flaky: the gateway times out twice per key
    "approved": 4,  # placed then approved: still cancellable
    "fulfilled": 3,  # placed then fulfilled: cancelling it is an error
    "declined": 5,  # wallet tok_declined: never placed; copies are declined
    "expired_wallet": 4,  # the wallet entry expired since
    "disabled_wallet": 3,  # the wallet entry was disabled since
    "no_wallet": 3,  # paid with a token that is not in the wallet: nothing to reuse
    "discontinued": 3,  # one line's SKU is discontinued
    "other_currency": 2,  # one line's SKU is priced in EUR
    "free": 3,  # a free, not shipped item: placed without a payment
    "no_shipping": 2,  # ships but has no shipping address: cannot be placed
    "mixed_lines": 3,  # SKU, bundle, adjustment and a shipment line (not copied)
    "nothing_to_copy": 1,  # only a shipment line
    # Placed through the external gateway (examples/external_gateway, a process of the
    # stack that a fault SIGKILLs and restarts): copies authorize and void over HTTP.
    "external": 12,
    # The same, captured in full and a part refunded before the faults: a copy cancelling
    # it refunds the rest through the endpoint (captures and refunds in its ledger).
    "external_paid": 4,
}
EXTERNAL_KINDS = ("external", "external_paid")
#: What the world refunds of an ``external_paid`` source before the faults.
REFUNDED_FIRST = 500
#: The token the example endpoint authorizes (any token it has no special meaning for).
EXTERNAL_TOKEN = "tok_ext_ok"

EXPIRED = date(2020, 1, 31)
NO_RETRIES = {"retry_after_seconds": [], "final_action": "deactivate"}


@dataclass(frozen=True)
class CopySpec:
    """One copy to create, and whether to abort it right after."""

    source_order_id: str
    place_target_order: bool
    cancel_source_order: bool
    reuse_wallet: bool
    skip_errors: bool
    abort: bool
    idempotency_key: str

    def options(self) -> dict[str, Any]:
        return {
            "source_order_id": self.source_order_id,
            "place_target_order": self.place_target_order,
            "cancel_source_order": self.cancel_source_order,
            "reuse_wallet": self.reuse_wallet,
            "skip_errors": self.skip_errors,
            "idempotency_key": self.idempotency_key,
        }


@dataclass
class World:
    initial_stock: dict[str, int] = field(default_factory=dict)
    #: source order id → its kind (``SOURCE_KINDS`` or ``subscription``)
    sources: dict[str, str] = field(default_factory=dict)
    subscriptions: list[str] = field(default_factory=list)
    copies: list[CopySpec] = field(default_factory=list)


class _Catalog:
    def __init__(self, session: Session, copies: int) -> None:
        plenty = 20 * copies + 1000
        scarce = max(10, copies // 6)
        self.stock: dict[str, int] = {}
        self.tee = self._sku(session, "TEE", price=1500, stock=plenty)
        self.mug = self._sku(session, "MUG", price=900, stock=plenty)
        self.hoodie = self._sku(session, "HOODIE-SCARCE", price=4500, stock=scarce)
        self.cap = self._sku(session, "CAP-SCARCE", price=1200, stock=scarce)
        self.poster = self._sku(session, "POSTER-GONE", price=700, stock=plenty, discontinued=True)
        self.ebook = self._sku(session, "EBOOK-FREE", price=0, stock=plenty, do_not_ship=True)
        self.scarf = self._sku(session, "SCARF-EUR", price=2500, stock=plenty, currency="EUR")

    def _sku(self, session: Session, code: str, **extra: Any) -> Sku:
        sku = make_sku(session, code, **extra)
        self.stock[code] = sku.stock_quantity
        return sku

    def basket(self, rng: random.Random) -> list[Line]:
        lines = [Line(rng.choice([self.tee, self.mug]), rng.randint(1, 3))]
        if rng.random() < 0.6:
            lines.append(Line(rng.choice([self.hoodie, self.cap]), rng.randint(1, 2)))
        return lines


def _source(
    session: Session,
    rng: random.Random,
    catalog: _Catalog,
    kind: str,
    external_gateway: str | None = None,
) -> Order:
    customer = make_customer(session)
    token = {"flaky": "tok_flaky", "declined": "tok_declined"}.get(kind, "tok_visa")
    if kind in EXTERNAL_KINDS:
        token = EXTERNAL_TOKEN
    entry = make_wallet_entry(
        session,
        customer,
        token=token,
        expires_on=EXPIRED if kind == "expired_wallet" else date(2099, 12, 31),
        disabled=kind == "disabled_wallet",
    )
    if kind in EXTERNAL_KINDS:
        assert external_gateway is not None, "an external source needs the gateway's id"
        entry.gateway = external_gateway
    lines = catalog.basket(rng)
    shipping = True
    if kind == "discontinued":
        lines.append(Line(catalog.poster, 1))
    elif kind == "other_currency":
        lines.append(Line(catalog.scarf, 1))
    elif kind == "free":
        lines, shipping = [Line(catalog.ebook, 1)], False
    elif kind == "no_shipping":
        shipping = False
    elif kind == "mixed_lines":
        lines += [
            Line(item_type=ItemType.BUNDLES, name="Starter kit", unit_amount_cents=2000),
            Line(item_type=ItemType.ADJUSTMENTS, name="Loyalty", unit_amount_cents=-300),
            Line(item_type=ItemType.SHIPMENTS, name="Express", unit_amount_cents=900),
        ]
    elif kind == "nothing_to_copy":
        lines = [Line(item_type=ItemType.SHIPMENTS, name="Express", unit_amount_cents=900)]
    order = make_order(
        session,
        lines,
        customer=customer,
        wallet_entry=None if kind == "no_wallet" else entry,
        shipping=shipping,
    )
    if kind == "no_wallet":
        order.payment_method, order.payment_gateway = "credit_card", "test"
        order.payment_source_token = "tok_visa"
    return order


def _place(sessions: sessionmaker[Session], order_id: str, gateways: Gateways) -> bool:
    for _ in range(4):  # tok_flaky times out twice per key
        try:
            return placing.place_order(sessions, order_id, Mode.TEST, gateways=gateways) == []
        except TransientError:
            continue
    return False


def _capture_and_refund_a_part(
    sessions: sessionmaker[Session], order_id: str, gateways: Gateways
) -> None:
    """Capture the placed order in full, then refund ``REFUNDED_FIRST`` cents of it."""
    for _ in range(4):  # the same keys again after an unanswered call
        try:
            with sessions.begin() as session:
                order = session.get_one(Order, order_id)
                status, payment = order.status, order.payment_status
            if status != OrderStatus.PLACED:
                return
            if payment == PaymentStatus.AUTHORIZED:
                placing.capture_order(sessions, order_id, Mode.TEST, gateways=gateways)
            if payment in (PaymentStatus.AUTHORIZED, PaymentStatus.PAID):
                placing.refund_order(
                    sessions,
                    order_id,
                    Mode.TEST,
                    REFUNDED_FIRST,
                    field="_refund_amount_cents",
                    gateways=gateways,
                )
            return
        except TransientError:
            continue


def build(
    sessions: sessionmaker[Session],
    rng: random.Random,
    gateways: Gateways,
    *,
    copies: int,
    subscriptions: int,
    renewals_within: float,
    external_gateway: str | None = None,
) -> World:
    """Write the world, place the sources that can be, and draw the copies to create.

    Sources of kind ``external`` pay through ``external_gateway`` (an external gateway's
    id, which ``gateways`` must map); without one the world has none.

    Subscriptions renew hourly: some are due at once (a few with ``catch_up``,
    so several missed periods renew together), the others fall due within
    ``renewals_within`` seconds.
    """
    world = World()
    kinds = [k for k in SOURCE_KINDS if external_gateway is not None or k not in EXTERNAL_KINDS]
    weights = [SOURCE_KINDS[k] for k in kinds]
    with sessions.begin() as session:
        catalog = _Catalog(session, copies)
        world.initial_stock = dict(catalog.stock)
        for kind in kinds + rng.choices(kinds, weights, k=max(0, copies // 4 - len(kinds))):
            source = _source(session, rng, catalog, kind, external_gateway)
            world.sources[source.id] = kind
        for n in range(subscriptions):
            kind = ["visa", "visa", "flaky", "declined"][n % 4]
            source = _source(session, rng, catalog, "flaky" if kind == "flaky" else "visa")
            world.sources[source.id] = "subscription"
            # A declined renewal: the card on file was replaced by one that is declined.
            entry = (
                make_wallet_entry(
                    session, session.get_one(Customer, source.customer_id), token="tok_declined"
                )
                if kind == "declined"
                else None
            )
            due_now = n % 2 == 0
            starts_at = (
                utcnow() - timedelta(hours=2, minutes=30)
                if due_now
                else utcnow() + timedelta(seconds=rng.uniform(3, renewals_within))
            )
            subscription = make_subscription(
                session,
                source,
                frequency="hourly",
                starts_at=starts_at,
                wallet_entry=entry,
                catch_up=due_now and n % 4 == 0,
                failure_policy=NO_RETRIES,
            )
            world.subscriptions.append(subscription.id)
    for order_id, kind in world.sources.items():
        if kind not in ("declined", "no_shipping", "nothing_to_copy"):
            _place(sessions, order_id, gateways)
    for order_id, kind in world.sources.items():
        if kind == "external_paid":
            _capture_and_refund_a_part(sessions, order_id, gateways)
    with sessions.begin() as session:
        approved = [i for i, k in world.sources.items() if k == "approved"]
        for order in session.scalars(select(Order).where(Order.id.in_(approved))):
            if order.status == OrderStatus.PLACED:
                order_states.approve(order)
        fulfilled = [i for i, k in world.sources.items() if k == "fulfilled"]
        session.execute(
            update(Order)
            .where(Order.id.in_(fulfilled), Order.status == OrderStatus.PLACED)
            .values(fulfillment_status=FulfillmentStatus.FULFILLED)
        )
    world.copies = _draw_copies(rng, world, copies)
    return world


def _draw_copies(rng: random.Random, world: World, count: int) -> list[CopySpec]:
    """Every plain source is copied at least once (an uncopied order would read as an
    orphan); the rest pick sources at random, so copies race to cancel one source."""
    plain = [i for i, k in world.sources.items() if k != "subscription"]
    picks = plain[:count] + [rng.choice(plain) for _ in range(count - len(plain[:count]))]
    rng.shuffle(picks)
    return [
        CopySpec(
            source_order_id=source,
            place_target_order=rng.random() < 0.7,
            cancel_source_order=rng.random() < 0.35,
            reuse_wallet=rng.random() < 0.85,
            skip_errors=rng.random() < 0.25,
            abort=rng.random() < 0.03,
            idempotency_key=f"chaos-{n}-{rng.getrandbits(48):012x}",
        )
        for n, source in enumerate(picks)
    ]
