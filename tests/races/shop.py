"""What a race is run on: an order ready to place, paid from its customer's wallet, and
the answers a request that loses a race may give."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Customer, CustomerPaymentSource, Order, OrderStatus, Sku
from tests.factories import (
    Line,
    make_customer,
    make_order,
    make_sku,
    make_wallet_entry,
    order_lines,
)

#: Each SKU's stock before a round: plenty, so that a place fails only because of a race.
STOCK = 50
#: A place (or cancel) that loses a race: the order changed under it (409) or it is no
#: longer placeable (422).
LOST = frozenset({409, 422})
#: An edit of an order that is no longer draft or pending, or that a copy owns.
REFUSED = frozenset({409})


@dataclass
class Shop:
    order: Order
    customer: Customer
    entry: CustomerPaymentSource
    skus: list[Sku]
    line_ids: list[str]

    @property
    def initial_stock(self) -> dict[str, int]:
        return {sku.code: STOCK for sku in self.skus}


def pending_order(
    sessions: sessionmaker[Session], rng: random.Random, *, lines: int = 1, token: str = "tok_visa"
) -> Shop:
    """A pending order of ``lines`` SKU lines (two SKUs, seeded prices and quantities),
    paid from its customer's wallet entry of ``token``."""
    with sessions.begin() as s:
        skus = [make_sku(s, price=rng.choice([1200, 1500, 4999]), stock=STOCK) for _ in range(2)]
        customer = make_customer(s)
        entry = make_wallet_entry(s, customer, token=token)
        order = make_order(
            s,
            [Line(skus[n % 2], rng.randint(1, 3)) for n in range(lines)],
            customer=customer,
            wallet_entry=entry,
        )
        line_ids = [line.id for line in order_lines(s, order.id)]
    return Shop(order, customer, entry, skus, line_ids)


def order_status(sessions: sessionmaker[Session], order_id: str) -> OrderStatus | None:
    with sessions.begin() as s:
        return s.scalar(select(Order.status).where(Order.id == order_id))
