"""Building the target order from the source order.

A copy is frozen, as Commerce Layer makes it: each line is copied as it was sold (SKUs at
their price and name then, promotion, gift card and adjustment lines as they are), not
repriced; shipments and payment methods are the commerce backend's to compute for each
order. A SKU that can no longer be sold (unknown, discontinued, in another currency) or
is short of stock is an error for its line. Bundle lines are copied as sold; only a
renewal's bundle *items* are checked against the catalog, as its SKUs are
(:func:`load_items_many`). A placed target's bundle lines take their bundles' SKUs'
stock when it is reserved (``stock.reserve``): a bundle short of a SKU is a problem
placing it, as a SKU line short of stock is. The target stays frozen until it is edited
(``order_edits.refresh``); a copy that applies promotions again does so on the lines
copied (``promotions.apply``).

A constant number of statements whatever the number of lines: the source's
lines with the SKUs they name are read in one query, the addresses in one,
and the copies are written with one bulk insert per table. Lines are read as
plain tuples (:class:`Line`), not ORM objects: a 1,000-line order is read once
per run and costs what its rows cost.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Table, and_, delete, insert, select, text
from sqlalchemy.orm import Session

from copying.errors import ErrorKey, ErrorLog
from copying.orders import order_states
from copying.orders.wallet import WalletPayer, attach_wallet_entry, payment_fields
from models import (
    Address,
    Adjustment,
    Bundle,
    CustomerPaymentSource,
    ItemType,
    LineItem,
    Mode,
    Order,
    OrderSubscriptionItem,
    Sku,
    new_public_id,
    utcnow,
)
from models.dialects import insert_rows

#: Item types a copy carries over. Shipments and payment methods are computed for each
#: order by the commerce backend, so they are not copied.
COPYABLE = frozenset(
    {
        ItemType.SKUS,
        ItemType.BUNDLES,
        ItemType.GIFT_CARDS,
        ItemType.ADJUSTMENTS,
        ItemType.PROMOTIONS,
    }
)
#: What makes an order worth copying: a promotion line alone is not.
GOODS = COPYABLE - {ItemType.PROMOTIONS}
#: Amounts are 4-byte integers in the database.
MAX_AMOUNT_CENTS = 2**31 - 1
SUBTOTAL_TYPES = frozenset({ItemType.SKUS, ItemType.BUNDLES, ItemType.GIFT_CARDS})


class Line(NamedTuple):
    """A line item's copied fields, as read, copied or made for an order."""

    item_type: ItemType
    sku_code: str | None
    name: str
    quantity: int
    unit_amount_cents: int
    options: list[dict[str, Any]]
    metadata_: dict[str, Any]
    #: A promotion line's promotion, and the coupon that unlocked it.
    promotion_id: str | None = None
    coupon_code: str | None = None
    #: A bundle line's bundle.
    bundle_code: str | None = None


class SkuTerms(NamedTuple):
    """What the catalog says of a SKU when the order was read."""

    name: str
    unit_amount_cents: int
    currency_code: str
    stock_quantity: int
    do_not_ship: bool
    discontinued: bool


class BundleTerms(NamedTuple):
    """What the catalog says of a bundle when a renewal read its items."""

    name: str
    price_amount_cents: int
    currency_code: str
    discontinued: bool


class SourceOrder(WalletPayer, Protocol):
    """What building a target reads of its source order: an ``Order``, or a row of
    :data:`SOURCE_COLUMNS` (a chunk reads its sources so, not as entities)."""

    @property
    def id(self) -> str: ...
    @property
    def customer_email(self) -> str | None: ...
    @property
    def currency_code(self) -> str: ...
    @property
    def billing_address_id(self) -> str | None: ...
    @property
    def shipping_address_id(self) -> str | None: ...
    @property
    def coupon_code(self) -> str | None: ...


SOURCE_COLUMNS = (
    Order.id,
    Order.mode,
    Order.customer_id,
    Order.customer_email,
    Order.currency_code,
    Order.billing_address_id,
    Order.shipping_address_id,
    Order.customer_payment_source_id,
    Order.coupon_code,
)


class Contents(NamedTuple):
    lines: list[Line]
    skus: dict[str, SkuTerms]


class Items(NamedTuple):
    """What a subscription in automatic mode renews: its items as lines, with the SKUs
    they name; and the bundles they name, by code (None: unknown), checked as its SKUs are
    (a copy's bundle lines are not looked up: they are copied as sold)."""

    contents: Contents
    bundles: dict[str, BundleTerms | None]


_LINE_COLUMNS = (
    LineItem.item_type,
    LineItem.sku_code,
    LineItem.name,
    LineItem.quantity,
    LineItem.unit_amount_cents,
    LineItem.options,
    LineItem.metadata_,
    LineItem.promotion_id,
    LineItem.coupon_code,
    LineItem.bundle_code,
)
_SKU_COLUMNS = (
    Sku.code,
    Sku.name,
    Sku.unit_amount_cents,
    Sku.currency_code,
    Sku.stock_quantity,
    Sku.do_not_ship,
    Sku.discontinued,
)
_BUNDLE_COLUMNS = (
    Bundle.code,
    Bundle.name,
    Bundle.price_amount_cents,
    Bundle.currency_code,
    Bundle.discontinued,
)


def load_lines(session: Session, order_id: str) -> list[LineItem]:
    """The order's line items as ORM objects, in order (for the API's edits)."""
    return list(
        session.scalars(
            select(LineItem).where(LineItem.order_id == order_id).order_by(LineItem.position)
        )
    )


def load_contents(session: Session, order_id: str) -> Contents:
    """The order's line items and the SKUs they name, in one query."""
    return load_contents_many(session, [order_id]).get(order_id, Contents([], {}))


def load_contents_many(session: Session, order_ids: Collection[str]) -> dict[str, Contents]:
    """:func:`load_contents` of many orders in one query (orders with no lines are left out).
    A line's SKU is looked up in the line's mode, which is its order's."""
    rows = session.execute(
        select(LineItem.order_id, *_LINE_COLUMNS, *_SKU_COLUMNS)
        .outerjoin(
            Sku,
            and_(
                LineItem.item_type == ItemType.SKUS,
                Sku.mode == LineItem.mode,
                Sku.code == LineItem.sku_code,
            ),
        )
        .where(LineItem.order_id.in_(order_ids))
        .order_by(LineItem.order_id, LineItem.position)
    )
    loaded: dict[str, Contents] = {}
    width = len(_LINE_COLUMNS) + 1
    for row in rows:
        contents = loaded.setdefault(row[0], Contents([], {}))
        contents.lines.append(Line(*row[1:width]))
        if row[width] is not None:
            contents.skus[row[width]] = SkuTerms(*row[width + 1 :])
    return loaded


def load_items_many(session: Session, subscription_ids: Collection[str]) -> dict[str, Items]:
    """What each subscription in automatic mode renews, oldest item first, in one query: a
    SKU item as a SKU line named as the catalog names its SKU, a bundle item as a bundle
    line named as its bundle, an adjustment item as an adjustment line named as its
    adjustment, each at the item's quantity and unit amount; with the SKUs and bundles
    they name. Subscriptions with no items are left out (they renew their whole source
    order). An item's SKU and bundle are looked up in the item's mode."""
    if not subscription_ids:
        return {}
    item = OrderSubscriptionItem
    rows = session.execute(
        select(item.order_subscription_id, item.item_type, item.sku_code, item.bundle_code)
        .add_columns(item.quantity, item.unit_amount_cents, Adjustment.name)
        .add_columns(*_SKU_COLUMNS, *_BUNDLE_COLUMNS)
        .outerjoin(Sku, and_(Sku.mode == item.mode, Sku.code == item.sku_code))
        .outerjoin(Bundle, and_(Bundle.mode == item.mode, Bundle.code == item.bundle_code))
        .outerjoin(Adjustment, Adjustment.id == item.adjustment_id)
        .where(item.order_subscription_id.in_(subscription_ids))
        .order_by(item.order_subscription_id, item.created_at, item.id)
    )
    loaded: dict[str, Items] = {}
    skus = len(_SKU_COLUMNS)
    for subscription_id, item_type, code, bundle_code, quantity, unit, adjusting, *rest in rows:
        sku, bundle = rest[:skus], rest[skus:]
        items = loaded.setdefault(subscription_id, Items(Contents([], {}), {}))
        contents = items.contents
        if item_type == ItemType.ADJUSTMENTS:
            contents.lines.append(Line(item_type, None, adjusting, quantity, unit, [], {}))
        elif item_type == ItemType.BUNDLES:
            terms = BundleTerms(*bundle[1:]) if bundle[0] is not None else None
            items.bundles[bundle_code] = terms
            name = terms.name if terms is not None else bundle_code
            contents.lines.append(
                Line(item_type, None, name, quantity, unit, [], {}, bundle_code=bundle_code)
            )
        else:
            known = sku[0] is not None
            contents.lines.append(
                Line(ItemType.SKUS, code, sku[1] if known else code, quantity, unit, [], {})
            )
            if known:
                contents.skus[code] = SkuTerms(*sku[1:])
    return loaded


def has_goods(lines: Iterable[Line]) -> bool:
    """Whether an order of ``lines`` has something to copy (:data:`GOODS`)."""
    return any(line.item_type in GOODS for line in lines)


def has_bundles(lines: Iterable[Line]) -> bool:
    """Whether some of ``lines`` name a bundle: placing them takes its SKUs' stock
    (``stock.reserve``)."""
    return any(line.item_type == ItemType.BUNDLES and line.bundle_code for line in lines)


def demand(lines: list[Line]) -> dict[str, int]:
    """The quantity of each SKU the lines ask for."""
    wanted: Counter[str] = Counter()
    for line in lines:
        if line.item_type == ItemType.SKUS and line.sku_code:
            wanted[line.sku_code] += line.quantity
    return dict(wanted)


class Sellable(Protocol):
    """What the pricer checks of a SKU or a bundle (a ``Sku``, a :class:`SkuTerms`, a
    ``Bundle``, a :class:`BundleTerms`)."""

    @property
    def currency_code(self) -> str: ...
    @property
    def discontinued(self) -> bool: ...


def problem_selling(
    code: str, sku: Sellable | None, currency_code: str, noun: str = "SKU"
) -> str | None:
    """Why SKU (or ``noun``: bundle) ``code`` cannot go on an order in ``currency_code``
    (unknown, discontinued, priced in another currency), or None. The one pricer's rules:
    a line added to an order and a line copied into a target follow the same."""
    if sku is None:
        return f"{noun} {code} is unknown"
    if sku.discontinued:
        return f"{noun} {code} is discontinued"
    if sku.currency_code != currency_code:
        return f"{noun} {code} is priced in {sku.currency_code}, the order is in {currency_code}"
    return None


def problem_amount(name: str, unit_amount_cents: int, quantity: int) -> str | None:
    """Why a line of ``quantity`` at ``unit_amount_cents`` cannot be stored, or None."""
    if abs(unit_amount_cents * quantity) > MAX_AMOUNT_CENTS:
        return (
            f"line {name} totals {unit_amount_cents * quantity} cents, "
            f"more than one line may ({MAX_AMOUNT_CENTS})"
        )
    return None


def copy_lines(
    contents: Contents,
    currency_code: str,
    errors: ErrorLog,
    bundles: Mapping[str, BundleTerms | None] | None = None,
) -> list[Line]:
    """The target's line items, frozen: each of a copyable type as it was.

    A SKU that is unknown, discontinued, priced in another currency or short of
    stock is an error for that line, and the line is left out; so is a bundle of
    ``bundles`` (a renewal's items', :class:`Items`) that is unknown, discontinued or
    priced in another currency. A copy's bundle lines are not looked up.
    """
    bundles = bundles or {}
    copied: list[Line] = []
    demanded: Counter[str] = Counter()
    for line in contents.lines:
        if line.item_type not in COPYABLE:
            continue
        if line.item_type == ItemType.SKUS:
            code = line.sku_code or ""
            sku = contents.skus.get(code)
            problem = problem_selling(code, sku, currency_code)
            if (
                problem is None
                and sku is not None
                and demanded[code] + line.quantity > sku.stock_quantity
            ):
                problem = (
                    f"SKU {code} is out of stock ({demanded[code] + line.quantity} "
                    f"requested, {sku.stock_quantity} left)"
                )
            if problem is not None or sku is None:
                errors.add(ErrorKey.LINE_ITEMS, problem or f"SKU {code} is unknown")
                continue
            demanded[code] += line.quantity
        elif line.item_type == ItemType.BUNDLES and line.bundle_code in bundles:
            code = line.bundle_code or ""
            problem = problem_selling(code, bundles[code], currency_code, "bundle")
            if problem is not None:
                errors.add(ErrorKey.LINE_ITEMS, problem)
                continue
        too_much = problem_amount(
            line.name or line.sku_code or "", line.unit_amount_cents, line.quantity
        )
        if too_much is not None:
            errors.add(ErrorKey.LINE_ITEMS, too_much)
            continue
        copied.append(line)
    return copied


def line_totals(lines: Iterable[Line]) -> dict[str, int]:
    """An order's amounts from its lines."""
    return totals(
        [
            {
                "item_type": line.item_type,
                "total_amount_cents": line.unit_amount_cents * line.quantity,
            }
            for line in lines
        ]
    )


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    """An order's amounts from its lines' types and totals. The promotion lines' discount
    never takes the total below zero: beyond that, it is cut (``discount_amount_cents``
    says what was taken off)."""

    def of(*types: ItemType) -> int:
        return sum(r["total_amount_cents"] for r in rows if r["item_type"] in types)

    subtotal, adjustments = of(*SUBTOTAL_TYPES), of(ItemType.ADJUSTMENTS)
    discount = max(of(ItemType.PROMOTIONS), -max(0, subtotal + adjustments))
    return {
        "subtotal_amount_cents": subtotal,
        "shipping_amount_cents": 0,
        "adjustment_amount_cents": adjustments,
        "discount_amount_cents": discount,
        "total_amount_cents": subtotal + adjustments + discount,
    }


#: Core, not ORM-enabled, inserts of clones: no session holds them, and the ORM's bulk
#: path costs more CPU than the statement.
_ADDRESSES: Table = Address.__table__  # type: ignore[assignment]


def read_addresses(session: Session, sources: Iterable[SourceOrder]) -> dict[str, dict[str, Any]]:
    """The cloned columns of the sources' billing and shipping addresses, by id."""
    ids = {i for o in sources for i in (o.billing_address_id, o.shipping_address_id) if i}
    if not ids:
        return {}
    originals = session.execute(
        select(Address.id, *(getattr(Address, c) for c in Address.CLONED)).where(
            Address.id.in_(ids)
        )
    )
    return {row[0]: dict(zip(Address.CLONED, row[1:], strict=True)) for row in originals}


def address_clones(
    source: SourceOrder, originals: Mapping[str, dict[str, Any]]
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """New copies of the source's billing and shipping addresses (one, if they are one), as
    rows to insert, and the ids of the billing and shipping clones."""
    clones = {
        address_id: {"id": new_public_id(), **originals[address_id]}
        for address_id in (source.billing_address_id, source.shipping_address_id)
        if address_id is not None and address_id in originals
    }

    def clone_of(address_id: str | None) -> str | None:
        return clones[address_id]["id"] if address_id in clones else None

    return (
        list(clones.values()),
        clone_of(source.billing_address_id),
        clone_of(source.shipping_address_id),
    )


def insert_addresses(session: Session, rows: list[dict[str, Any]]) -> None:
    insert_rows(session, _ADDRESSES, rows)


def clone_addresses(session: Session, source: Order) -> tuple[str | None, str | None]:
    """New copies of the source's billing and shipping addresses (one, if they are one)."""
    rows, billing_id, shipping_id = address_clones(source, read_addresses(session, [source]))
    insert_addresses(session, rows)
    return billing_id, shipping_id


def order_row(values: dict[str, Any]) -> dict[str, Any]:
    """:func:`target_values` keyed by column, for :func:`models.dialects.insert_rows`."""
    columns = Order.__mapper__.columns
    return {columns[key].name: value for key, value in values.items()}


def target_values(
    source: SourceOrder,
    copied: list[Line],
    *,
    billing_address_id: str | None,
    shipping_address_id: str | None,
    payment_source: CustomerPaymentSource | None,
    reference: str | None = None,
    coupon_code: str | None = None,
) -> dict[str, Any]:
    """A new, frozen, target order's columns: ``source``'s customer, the ``copied`` lines'
    totals, ``coupon_code`` (the source's, when it was copied)."""
    return {
        "id": new_public_id(),
        "mode": source.mode,
        "status": order_states.initial_status(bool(copied)),
        "customer_id": source.customer_id,
        "customer_email": source.customer_email,
        "currency_code": source.currency_code,
        "billing_address_id": billing_address_id,
        "shipping_address_id": shipping_address_id,
        "reference": reference,
        "metadata_": {},
        "coupon_code": coupon_code,
        "frozen": True,
        **line_totals(copied),
        # Every key, also without an entry: a chunk inserts its targets as rows of one shape.
        **payment_fields(payment_source),
    }


def build_target(
    session: Session,
    source: Order,
    target: Order | None,
    *,
    errors: ErrorLog,
    contents: Contents | None = None,
    bundles: Mapping[str, BundleTerms | None] | None = None,
    payment_source: CustomerPaymentSource | None = None,
    reference: str | None = None,
    coupon_code: str | None = None,
    then: Callable[[list[Line]], list[Line]] | None = None,
) -> tuple[Order, Contents] | None:
    """Write the target order (new, or ``target`` refilled) from ``source``'s line items,
    frozen, charged to ``payment_source`` when one is given, carrying ``coupon_code``;
    ``then`` changes the lines copied before they are written (promotions applied again).

    ``contents`` are the source's, if already read in this transaction (or a renewal's
    items', with the ``bundles`` they name: :func:`load_items_many`). Returns
    the target with its own contents, or None, writing nothing, when the source
    has no line items to copy. ``target`` must still be placeable: a placed
    target is never rebuilt. Does not commit.
    """
    errors.clear(ErrorKey.LINE_ITEMS)
    if contents is None:
        contents = load_contents(session, source.id)
    if not has_goods(contents.lines):
        errors.add(ErrorKey.LINE_ITEMS, f"source order {source.id} has no line items to copy")
        return None
    copied = copy_lines(contents, source.currency_code, errors, bundles)
    if then is not None:
        copied = then(copied)
    if target is None:
        billing_id, shipping_id = clone_addresses(session, source)
        target = Order(
            **target_values(
                source,
                copied,
                billing_address_id=billing_id,
                shipping_address_id=shipping_id,
                payment_source=payment_source,
                reference=reference,
                coupon_code=coupon_code,
            )
        )
        session.add(target)
        session.flush()
    else:
        session.execute(delete(LineItem).where(LineItem.order_id == target.id))
        for column, value in line_totals(copied).items():
            setattr(target, column, value)
        target.coupon_code, target.frozen = coupon_code, True
        if payment_source is not None:
            attach_wallet_entry(target, payment_source)
        if copied:
            order_states.open_order(target)
    if copied:
        insert_lines(session, target, copied)
    return target, Contents(copied, contents.skus)


#: PostgreSQL: every line in one statement whose text does not depend on the number of
#: lines, so a 1,000-line order is parsed and planned like a 1-line one, and psycopg keeps
#: it prepared. The lines travel as one JSON document: encoded by one C call, where an
#: array per column cost psycopg a quoting check per element.
_INSERT_LINES_PG = text(
    """INSERT INTO line_items (id, order_id, mode, position, item_type, sku_code, bundle_code,
        name, quantity, reserved_quantity, unit_amount_cents, total_amount_cents, options,
        metadata, promotion_id, coupon_code, created_at, updated_at)
    SELECT line.id, line.order_id, line.mode, line.position, line.item_type, line.sku_code,
        line.bundle_code, line.name, line.quantity, line.reserved, line.unit,
        line.unit * line.quantity, line.options, line.metadata, line.promotion_id,
        line.coupon_code, :now, :now
    FROM json_to_recordset(CAST(:lines AS json)) AS line(id text, order_id text, mode text,
        position int, item_type text, sku_code text, bundle_code text, name text,
        quantity int, reserved int, unit int, options jsonb, metadata jsonb,
        promotion_id text, coupon_code text)
    """
)


def insert_lines(session: Session, order: Order, lines: list[Line]) -> None:
    """Add ``lines`` to ``order``, in order, in one statement. Does not commit."""
    insert_lines_many(session, [(order.id, order.mode, lines)])


def insert_lines_many(
    session: Session,
    orders: list[tuple[str, Mode, list[Line]]],
    *,
    reserving: Collection[str] = (),
) -> None:
    """Add each (order id, mode, lines)'s lines to its order, in order, in one statement;
    the SKU lines of the orders in ``reserving`` hold their quantities (the caller takes
    that stock in this transaction, ``stock.reserve_many``, or rolls back). Does not
    commit."""

    def reserved(order_id: str, line: Line) -> int:
        holds = order_id in reserving and line.item_type == ItemType.SKUS
        return line.quantity if holds else 0

    rows = [
        (order_id, mode, position, line)
        for order_id, mode, lines in orders
        for position, line in enumerate(lines)
    ]
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(
            insert(LineItem),
            [
                {
                    **line._asdict(),
                    "reserved_quantity": reserved(order_id, line),
                    "total_amount_cents": line.unit_amount_cents * line.quantity,
                    "id": new_public_id(),
                    "order_id": order_id,
                    "mode": mode,
                    "position": position,
                }
                for order_id, mode, position, line in rows
            ],
        )
        return
    session.execute(
        _INSERT_LINES_PG,
        {
            "now": utcnow(),
            "lines": json.dumps(
                [
                    {
                        "id": new_public_id(),
                        "order_id": order_id,
                        "mode": mode,
                        "position": position,
                        "item_type": line.item_type,
                        "sku_code": line.sku_code,
                        "bundle_code": line.bundle_code,
                        "name": line.name,
                        "quantity": line.quantity,
                        "reserved": reserved(order_id, line),
                        "unit": line.unit_amount_cents,
                        "options": line.options,
                        "metadata": line.metadata_,
                        "promotion_id": line.promotion_id,
                        "coupon_code": line.coupon_code,
                    }
                    for order_id, mode, position, line in rows
                ]
            ),
        },
    )
