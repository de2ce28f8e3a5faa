"""Building the target order from the source order.

A constant number of statements whatever the number of lines: the source's
lines, the SKUs they name and the addresses are each read in one query, and
the copies are written with one bulk insert per table.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from copying import order_states
from copying.errors import ErrorLog
from models import Address, ItemType, LineItem, Order, Sku, new_public_id

#: Item types a copy carries over. Shipments, payment methods and promotions
#: are computed for each order by the commerce backend, so they are not copied.
COPYABLE = frozenset({ItemType.SKUS, ItemType.BUNDLES, ItemType.GIFT_CARDS, ItemType.ADJUSTMENTS})
ERROR_KEY = "line_items"
#: Amounts are 4-byte integers in the database.
MAX_AMOUNT_CENTS = 2**31 - 1
SUBTOTAL_TYPES = frozenset({ItemType.SKUS, ItemType.BUNDLES, ItemType.GIFT_CARDS})


def load_lines(session: Session, order_id: str) -> list[LineItem]:
    return list(
        session.scalars(
            select(LineItem).where(LineItem.order_id == order_id).order_by(LineItem.position)
        )
    )


def load_skus(session: Session, order: Order, lines: list[LineItem]) -> dict[str, Sku]:
    codes = {line.sku_code for line in lines if line.item_type == ItemType.SKUS and line.sku_code}
    if not codes:
        return {}
    return {
        sku.code: sku
        for sku in session.scalars(select(Sku).where(Sku.mode == order.mode, Sku.code.in_(codes)))
    }


def load_contents(session: Session, order: Order) -> tuple[list[LineItem], dict[str, Sku]]:
    """The order's line items and the SKUs they name (two queries)."""
    lines = load_lines(session, order.id)
    return lines, load_skus(session, order, lines)


def price_lines(
    lines: list[LineItem], skus: dict[str, Sku], currency_code: str, errors: ErrorLog
) -> list[dict[str, Any]]:
    """The target's line items as rows: SKUs repriced from the catalog, the rest as they were.

    A SKU that is unknown, discontinued, priced in another currency or short of
    stock is an error for that line, and the line is left out.
    """
    rows: list[dict[str, Any]] = []
    demand: Counter[str] = Counter()
    for line in lines:
        if line.item_type not in COPYABLE:
            continue
        unit, name = line.unit_amount_cents, line.name
        if line.item_type == ItemType.SKUS:
            code = line.sku_code or ""
            sku = skus.get(code)
            problem = None
            if sku is None:
                problem = f"SKU {code} is unknown"
            elif sku.discontinued:
                problem = f"SKU {code} is discontinued"
            elif sku.currency_code != currency_code:
                problem = (
                    f"SKU {code} is priced in {sku.currency_code}, the order is in {currency_code}"
                )
            elif demand[code] + line.quantity > sku.stock_quantity:
                problem = (
                    f"SKU {code} is out of stock ({demand[code] + line.quantity} "
                    f"requested, {sku.stock_quantity} left)"
                )
            if problem is not None or sku is None:
                errors.add(ERROR_KEY, problem or f"SKU {code} is unknown")
                continue
            demand[code] += line.quantity
            unit, name = sku.unit_amount_cents, sku.name
        if unit * line.quantity > MAX_AMOUNT_CENTS:
            errors.add(
                ERROR_KEY,
                f"line {name or line.sku_code} totals {unit * line.quantity} "
                f"cents, more than one line may ({MAX_AMOUNT_CENTS})",
            )
            continue
        rows.append(
            {
                "item_type": line.item_type,
                "sku_code": line.sku_code,
                "name": name,
                "quantity": line.quantity,
                "unit_amount_cents": unit,
                "total_amount_cents": unit * line.quantity,
                "options": line.options,
                "metadata_": line.metadata_,
            }
        )
    return rows


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    subtotal = sum(r["total_amount_cents"] for r in rows if r["item_type"] in SUBTOTAL_TYPES)
    adjustments = sum(
        r["total_amount_cents"] for r in rows if r["item_type"] == ItemType.ADJUSTMENTS
    )
    return {
        "subtotal_amount_cents": subtotal,
        "shipping_amount_cents": 0,
        "adjustment_amount_cents": adjustments,
        "total_amount_cents": subtotal + adjustments,
    }


def clone_addresses(session: Session, source: Order) -> tuple[str | None, str | None]:
    """New copies of the source's billing and shipping addresses (one, if they are one)."""
    ids = {i for i in (source.billing_address_id, source.shipping_address_id) if i}
    if not ids:
        return None, None
    originals = session.scalars(select(Address).where(Address.id.in_(ids))).all()
    clones = {
        a.id: {"id": new_public_id(), **{c: getattr(a, c) for c in Address.CLONED}}
        for a in originals
    }
    if clones:
        session.execute(insert(Address), list(clones.values()))

    def clone_of(address_id: str | None) -> str | None:
        return clones[address_id]["id"] if address_id in clones else None

    return clone_of(source.billing_address_id), clone_of(source.shipping_address_id)


def build_target(
    session: Session,
    source: Order,
    target: Order | None,
    *,
    errors: ErrorLog,
    reference: str | None = None,
) -> Order | None:
    """Write the target order (new, or ``target`` refilled) from ``source``'s line items.

    Returns None, writing nothing, when the source has no line items to copy.
    ``target`` must still be placeable: a placed target is never rebuilt.
    Does not commit.
    """
    errors.clear(ERROR_KEY)
    lines = load_lines(session, source.id)
    if not any(line.item_type in COPYABLE for line in lines):
        errors.add(ERROR_KEY, f"source order {source.id} has no line items to copy")
        return None
    skus = load_skus(session, source, lines)
    rows = price_lines(lines, skus, source.currency_code, errors)
    if target is None:
        billing_id, shipping_id = clone_addresses(session, source)
        target = Order(
            id=new_public_id(),
            mode=source.mode,
            status=order_states.initial_status(bool(rows)),
            customer_id=source.customer_id,
            customer_email=source.customer_email,
            currency_code=source.currency_code,
            billing_address_id=billing_id,
            shipping_address_id=shipping_id,
            reference=reference,
            metadata_={},
            **totals(rows),
        )
        session.add(target)
        session.flush()
    else:
        session.execute(delete(LineItem).where(LineItem.order_id == target.id))
        for column, value in totals(rows).items():
            setattr(target, column, value)
        if rows:
            order_states.open_order(target)
    if rows:
        session.execute(
            insert(LineItem),
            [
                {
                    **row,
                    "id": new_public_id(),
                    "order_id": target.id,
                    "mode": source.mode,
                    "position": position,
                }
                for position, row in enumerate(rows)
            ],
        )
    return target
