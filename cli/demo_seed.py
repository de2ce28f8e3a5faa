"""Writing the demo: catalog, customer, wallet, source orders, then the copies.

Three kinds of unit of work, in order: the world (one transaction), the
source orders to place (through :func:`copying.orders.placing.place_order`, which
calls the gateway between its own transactions), and the copies (one unit of
work that publishes them to the broker once committed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cli.demo_scenarios import CATALOG, ORIGIN, SCENARIOS, WALLET, Scenario, SourceSpec
from copying.copies import lifecycle
from copying.copies.dispatch import Publish, unit_of_work
from copying.orders import order_states, placing, targets, wallet
from copying.orders.gateways import Gateways
from models import (
    Address,
    Customer,
    CustomerPaymentSource,
    ItemType,
    LineItem,
    Mode,
    Order,
    Sku,
    new_public_id,
    utcnow,
)

MODE = Mode.TEST
CURRENCY = "USD"


@dataclass
class Seeded:
    batch: str
    customer_id: str = ""
    sku_codes: list[str] = field(default_factory=list)
    wallet_ids: dict[str, str] = field(default_factory=dict)
    order_ids: list[str] = field(default_factory=list)
    copy_ids: list[str] = field(default_factory=list)


class SeedError(RuntimeError):
    """The demo could not be written as designed (e.g. a source order would not place)."""


def seed(
    sessions: sessionmaker[Session],
    publish: Publish,
    gateways: Gateways,
    scenarios: tuple[Scenario, ...] = SCENARIOS,
) -> Seeded:
    """Write the demo in test mode and publish its copies; returns what was written."""
    seeded = Seeded(batch=new_public_id())
    today = utcnow().date()
    with sessions.begin() as session:
        stock_catalog(session, discontinued=False)
        seeded.sku_codes = [sku.code for sku in CATALOG]
        customer = add_customer(session, seeded.batch)
        seeded.customer_id = customer.id
        seeded.wallet_ids = add_wallet(session, customer, today)
        sources = [
            add_source_order(session, customer, scenario.source, seeded.wallet_ids)
            for scenario in scenarios
        ]
        seeded.order_ids = [order.id for order in sources]
    for scenario, source in zip(scenarios, sources, strict=True):
        if scenario.source.placed:
            problems = placing.place_order(sessions, source.id, MODE, gateways=gateways)
            if problems:
                raise SeedError(f"demo source order {source.id} not placed: {'; '.join(problems)}")
    with sessions.begin() as session:
        # Discontinued after the orders above bought it: only the copies meet it.
        stock_catalog(session, discontinued=True)
    with unit_of_work(sessions, publish) as session:
        for scenario, source in zip(scenarios, sources, strict=True):
            copy = lifecycle.create(
                session,
                mode=MODE,
                source_order_id=source.id,
                reference=scenario.reference,
                reference_origin=ORIGIN,
                metadata=scenario.metadata(seeded.batch),
                options=scenario.options,
            )
            seeded.copy_ids.append(copy.id)
    return seeded


def stock_catalog(session: Session, *, discontinued: bool) -> None:
    """Create the demo SKUs, or put existing ones back to the demo's prices and stock.

    ``discontinued=False`` keeps every SKU on sale (to place the source orders).
    """
    existing = {
        sku.code: sku
        for sku in session.scalars(
            select(Sku).where(Sku.mode == MODE, Sku.code.in_([s.code for s in CATALOG]))
        )
    }
    for spec in CATALOG:
        sku = existing.get(spec.code)
        if sku is None:
            sku = Sku(id=new_public_id(), mode=MODE, code=spec.code)
            session.add(sku)
        sku.name = spec.name
        sku.unit_amount_cents = spec.price_cents
        sku.currency_code = CURRENCY
        sku.stock_quantity = spec.stock
        sku.do_not_ship = spec.do_not_ship
        sku.discontinued = spec.discontinued and discontinued
    session.flush()


def add_customer(session: Session, batch: str) -> Customer:
    customer = Customer(
        id=new_public_id(),
        mode=MODE,
        email=f"ada.lovelace+{batch.lower()}@example.com",
        metadata_={"demo": batch},
    )
    session.add(customer)
    session.flush()
    return customer


def add_wallet(session: Session, customer: Customer, today: date) -> dict[str, str]:
    """The customer's saved cards, by the names in :data:`WALLET`."""
    entries = {
        name: CustomerPaymentSource(
            id=new_public_id(),
            mode=MODE,
            customer_id=customer.id,
            payment_method="credit_card",
            gateway="test",
            payment_source_token=token,
            name=card,
            expires_on=today - timedelta(days=31) if expired else today + timedelta(days=3 * 365),
        )
        for name, (token, card, expired) in WALLET.items()
    }
    session.add_all(entries.values())
    session.flush()
    return {name: entry.id for name, entry in entries.items()}


def add_address(session: Session, city: str) -> Address:
    address = Address(
        id=new_public_id(),
        mode=MODE,
        first_name="Ada",
        last_name="Lovelace",
        line_1="Via Roma 1",
        city=city,
        zip_code="50123",
        country_code="IT",
        phone="+39 055 000000",
    )
    session.add(address)
    session.flush()
    return address


def add_source_order(
    session: Session, customer: Customer, spec: SourceSpec, wallet_ids: dict[str, str]
) -> Order:
    """A ``pending`` order (``draft`` when it has no lines) priced from the catalog."""
    skus = {
        sku.code: sku
        for sku in session.scalars(
            select(Sku).where(Sku.mode == MODE, Sku.code.in_([code for code, _ in spec.lines]))
        )
    }
    rows = [
        LineItem(
            id=new_public_id(),
            mode=MODE,
            item_type=ItemType.SKUS,
            sku_code=code,
            name=skus[code].name,
            quantity=quantity,
            unit_amount_cents=skus[code].unit_amount_cents,
            total_amount_cents=skus[code].unit_amount_cents * quantity,
            options=[],
            metadata_={},
        )
        for code, quantity in spec.lines
    ]
    if spec.discount_cents:
        rows.append(
            LineItem(
                id=new_public_id(),
                mode=MODE,
                item_type=ItemType.ADJUSTMENTS,
                name="Loyalty discount",
                quantity=1,
                unit_amount_cents=spec.discount_cents,
                total_amount_cents=spec.discount_cents,
                options=[],
                metadata_={},
            )
        )
    order = Order(
        id=new_public_id(),
        mode=MODE,
        status=order_states.initial_status(bool(rows)),
        customer_id=customer.id,
        customer_email=customer.email,
        currency_code=CURRENCY,
        billing_address_id=add_address(session, "Florence").id,
        shipping_address_id=add_address(session, "Milan").id if spec.shipping_address else None,
        reference="demo source order",
        reference_origin=ORIGIN,
        metadata_={},
        **targets.totals(
            [
                {"item_type": row.item_type, "total_amount_cents": row.total_amount_cents}
                for row in rows
            ]
        ),
    )
    if spec.wallet is not None:
        entry = session.get_one(CustomerPaymentSource, wallet_ids[spec.wallet])
        wallet.attach_wallet_entry(order, entry)
    session.add(order)
    session.flush()  # one order per flush: on SQLite its number is max(number) + 1
    for position, row in enumerate(rows):
        row.order_id = order.id
        row.position = position
    session.add_all(rows)
    session.flush()
    return order
