"""Factories: build the world a copy runs in, through the real domain code."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from copying.copies import lifecycle
from copying.copies.options import CopyOptions
from copying.orders import order_edits, order_states, targets, wallet
from models import (
    Address,
    Coupon,
    Customer,
    CustomerPaymentSource,
    ItemType,
    LineItem,
    Mode,
    Order,
    OrderCopy,
    OrderCopyEvent,
    OrderSubscription,
    PaymentAuthorization,
    PercentageDiscountPromotion,
    Promotion,
    Sku,
    SubscriptionStatus,
    TestGatewayCharge,
    new_public_id,
)


def make_sku(
    session: Session,
    code: str | None = None,
    *,
    price: int = 1000,
    stock: int = 100,
    currency: str = "USD",
    mode: Mode = Mode.TEST,
    **extra: Any,
) -> Sku:
    sku = Sku(
        id=new_public_id(),
        code=code or f"SKU-{new_public_id()}",
        name=f"Item {code}",
        unit_amount_cents=price,
        currency_code=currency,
        stock_quantity=stock,
        mode=mode,
        **extra,
    )
    session.add(sku)
    session.flush()
    return sku


def make_customer(session: Session, *, mode: Mode = Mode.TEST) -> Customer:
    customer = Customer(
        id=new_public_id(), email=f"{new_public_id().lower()}@example.com", mode=mode, metadata_={}
    )
    session.add(customer)
    session.flush()
    return customer


def make_wallet_entry(
    session: Session,
    customer: Customer,
    *,
    token: str = "tok_visa",
    expires_on: date | None = date(2099, 12, 31),
    disabled: bool = False,
) -> CustomerPaymentSource:
    entry = CustomerPaymentSource(
        id=new_public_id(),
        customer_id=customer.id,
        payment_source_token=token,
        name="Visa •••• 4242",
        expires_on=expires_on,
        disabled=disabled,
        mode=customer.mode,
    )
    session.add(entry)
    session.flush()
    return entry


def make_address(session: Session, *, mode: Mode = Mode.TEST, city: str = "Florence") -> Address:
    address = Address(
        id=new_public_id(),
        first_name="Ada",
        last_name="Lovelace",
        line_1="Via Roma 1",
        city=city,
        zip_code="50123",
        country_code="IT",
        phone="+39 055 000000",
        mode=mode,
    )
    session.add(address)
    session.flush()
    return address


@dataclass
class Line:
    sku: Sku | None = None
    quantity: int = 1
    item_type: ItemType = ItemType.SKUS
    name: str = ""
    unit_amount_cents: int = 0
    options: list[dict[str, Any]] = field(default_factory=list)
    #: The frequency of a subscription the line is for.
    frequency: str | None = None


def make_order(
    session: Session,
    lines: list[Line],
    *,
    customer: Customer | None = None,
    wallet_entry: CustomerPaymentSource | None = None,
    billing: bool = True,
    shipping: bool = True,
    email: bool = True,
    mode: Mode = Mode.TEST,
    coupon_code: str | None = None,
    promotions_at: datetime | None = None,
) -> Order:
    """A ``pending`` (or ``draft``, when empty) order priced from the catalog, carrying
    ``coupon_code``; with ``promotions_at``, refreshed then as an edit refreshes an order
    (its promotion lines made)."""
    customer = customer or make_customer(session, mode=mode)
    order = Order(
        id=new_public_id(),
        mode=mode,
        customer_id=customer.id,
        customer_email=customer.email if email else None,
        currency_code="USD",
        billing_address_id=make_address(session, mode=mode).id if billing else None,
        shipping_address_id=make_address(session, mode=mode, city="Milan").id if shipping else None,
        status=order_states.initial_status(bool(lines)),
        metadata_={},
        coupon_code=coupon_code,
    )
    if wallet_entry is not None:
        wallet.attach_wallet_entry(order, wallet_entry)
    session.add(order)
    session.flush()
    rows = []
    for position, line in enumerate(lines):
        unit = line.sku.unit_amount_cents if line.sku else line.unit_amount_cents
        rows.append(
            LineItem(
                id=new_public_id(),
                order_id=order.id,
                mode=mode,
                position=position,
                item_type=line.item_type,
                sku_code=line.sku.code if line.sku else None,
                name=line.name or (line.sku.name if line.sku else ""),
                quantity=line.quantity,
                unit_amount_cents=unit,
                total_amount_cents=unit * line.quantity,
                options=line.options,
                metadata_={},
                frequency=line.frequency,
            )
        )
    session.add_all(rows)
    for column, value in targets.totals(
        [{"item_type": r.item_type, "total_amount_cents": r.total_amount_cents} for r in rows]
    ).items():
        setattr(order, column, value)
    session.flush()
    if promotions_at is not None:
        order_edits.refresh(session, order, promotions_at)
    return order


#: A window around every clock the tests use.
ALWAYS = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def make_promotion(
    session: Session,
    kind: type[Promotion] = PercentageDiscountPromotion,
    *,
    name: str = "Sale",
    percentage: int | None = None,
    fixed_amount_cents: int | None = None,
    window: tuple[datetime, datetime] = ALWAYS,
    currency: str | None = None,
    sku_codes: list[str] | None = None,
    mode: Mode = Mode.TEST,
) -> Promotion:
    """A promotion of ``kind`` (10% off, if it is a percentage and none is given)."""
    if kind is PercentageDiscountPromotion and percentage is None:
        percentage = 10
    promotion = kind(
        id=new_public_id(),
        mode=mode,
        name=name,
        percentage=percentage,
        fixed_amount_cents=fixed_amount_cents,
        starts_at=window[0],
        expires_at=window[1],
        currency_code=currency,
        sku_codes=sku_codes,
        metadata_={},
    )
    session.add(promotion)
    session.flush()
    return promotion


def make_coupon(
    session: Session,
    promotion: Promotion,
    code: str | None = None,
    *,
    usage_limit: int | None = None,
    expires_at: datetime | None = None,
) -> Coupon:
    coupon = Coupon(
        id=new_public_id(),
        mode=promotion.mode,
        promotion_id=promotion.id,
        code=code or f"C{new_public_id()}",
        usage_limit=usage_limit,
        expires_at=expires_at,
    )
    session.add(coupon)
    session.flush()
    return coupon


def authorizations(session: Session, order_id: str) -> list[PaymentAuthorization]:
    return list(
        session.scalars(
            select(PaymentAuthorization).where(PaymentAuthorization.order_id == order_id)
        )
    )


# --- copies: the usual world, running a copy, reading what it left -----------------------


@dataclass
class Shop:
    """A customer with a wallet entry and a source order of one SKU line."""

    sku: Sku
    customer: Customer
    entry: CustomerPaymentSource
    source: Order


def make_shop(
    session: Session,
    *,
    quantity: int = 2,
    stock: int = 10,
    price: int = 1000,
    token: str = "tok_visa",
    mode: Mode = Mode.TEST,
) -> Shop:
    sku = make_sku(session, price=price, stock=stock, mode=mode)
    customer = make_customer(session, mode=mode)
    entry = make_wallet_entry(session, customer, token=token)
    source = make_order(
        session, [Line(sku, quantity)], customer=customer, wallet_entry=entry, mode=mode
    )
    return Shop(sku=sku, customer=customer, entry=entry, source=source)


def create_copy(
    sessions: sessionmaker[Session],
    source_order_id: str,
    *,
    mode: Mode = Mode.TEST,
    now: datetime | None = None,
    **options: Any,
) -> OrderCopy:
    """A committed ``pending`` copy (its announcement is dropped: tests execute it directly);
    ``options`` are :class:`CopyOptions` and the other keywords of ``lifecycle.create``."""
    flags = {name: options.pop(name) for name in CopyOptions.names() if name in options}
    with sessions.begin() as session:
        return lifecycle.create(
            session,
            mode=mode,
            source_order_id=source_order_id,
            now=now,
            options=CopyOptions(**flags),
            **options,
        )


def copy_events(session: Session, copy_id: str) -> list[OrderCopyEvent]:
    return list(
        session.scalars(
            select(OrderCopyEvent)
            .where(OrderCopyEvent.order_copy_id == copy_id)
            .order_by(OrderCopyEvent.id)
        )
    )


def order_lines(session: Session, order_id: str) -> list[LineItem]:
    return targets.load_lines(session, order_id)


def customer_orders(session: Session, customer_id: str) -> list[Order]:
    return list(
        session.scalars(
            select(Order).where(Order.customer_id == customer_id).order_by(Order.number)
        )
    )


def gateway_charge(session: Session, idempotency_key: str) -> TestGatewayCharge | None:
    """The test gateway's ledger row for ``idempotency_key`` (the remote side's record)."""
    return session.get(TestGatewayCharge, idempotency_key, populate_existing=True)


def make_subscription(
    session: Session,
    source: Order,
    *,
    frequency: str = "monthly",
    starts_at: datetime,
    next_run_at: datetime | None = None,
    wallet_entry: CustomerPaymentSource | None = None,
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    **extra: Any,
) -> OrderSubscription:
    """A subscription renewing ``source`` (first run at ``starts_at`` unless told)."""
    subscription = OrderSubscription(
        id=new_public_id(),
        mode=source.mode,
        source_order_id=source.id,
        customer_id=source.customer_id,
        customer_payment_source_id=(
            wallet_entry.id if wallet_entry else source.customer_payment_source_id
        ),
        frequency=frequency,
        status=status,
        starts_at=starts_at,
        next_run_at=next_run_at or starts_at,
        metadata_={},
        **{"failure_policy": {}, **extra},
    )
    session.add(subscription)
    session.flush()
    return subscription
