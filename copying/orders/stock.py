"""Stock reservation: one statement per order, whatever its number of lines; and with the
stock, the coupon uses its promotion lines need (``promotions.take_coupon_uses``).

A SKU line takes its quantity of its SKU; a bundle line naming a bundle of the catalog
takes, of each SKU of the bundle's list, its quantity times the SKU's in the list (a
bundle line naming none takes nothing). Each line records what it took: a SKU line in
``reserved_quantity``, a bundle line a ``LineItemStock`` row per SKU. Giving back returns
that record, never what the lines or the bundle's list say by then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Table, and_, delete, func, select, text, union_all, update
from sqlalchemy.orm import Session

from copying.orders import promotions
from models import Bundle, ItemType, LineItem, LineItemStock, Mode, Sku
from models.dialects import insert_rows

_LINE_ITEM_STOCK: Table = LineItemStock.__table__  # type: ignore[assignment]


def _demand(order_id: str, held: bool):  # type: ignore[no-untyped-def]
    """What the order's lines want (``held``: hold) of each SKU: its SKU lines' quantities
    (held: as recorded), and what its bundle lines recorded (:func:`_record_bundles` writes
    that before their stock is taken)."""
    column = LineItem.reserved_quantity if held else LineItem.quantity
    lines = select(LineItem.sku_code, column.label("quantity")).where(
        LineItem.order_id == order_id, LineItem.item_type == ItemType.SKUS
    )
    bundled = (
        select(LineItemStock.sku_code, LineItemStock.quantity)
        .join(LineItem, LineItem.id == LineItemStock.line_item_id)
        .where(LineItem.order_id == order_id)
    )
    wanted = union_all(lines, bundled).subquery("wanted")
    return (
        select(wanted.c.sku_code, func.sum(wanted.c.quantity).label("quantity"))
        .group_by(wanted.c.sku_code)
        .subquery("demand")
    )


def _locked(order_id: str, mode: Mode, codes: Sequence[str] | None = None, *, held: bool):  # type: ignore[no-untyped-def]
    """The order's SKU rows with the quantity it wants (``held``: holds) of each, the rows
    locked in id order first (PostgreSQL), as a chunk's ``reserve_many`` locks them: two
    transactions taking or giving back the same SKUs never wait for each other in a circle."""
    demand = _demand(order_id, held)
    only = (Sku.code.in_(codes),) if codes is not None else ()
    return (
        select(Sku.id, demand.c.quantity)
        .join(demand, and_(Sku.mode == mode, Sku.code == demand.c.sku_code, *only))
        .order_by(Sku.id)
        .with_for_update(of=Sku)
        .subquery("locked")
    )


def reserve(
    session: Session,
    order_id: str,
    mode: Mode,
    wanted: Mapping[str, int],
    *,
    bundled: bool = False,
) -> list[str]:
    """Take the order's SKU quantities (``wanted``: its SKU lines' demand, as read in this
    transaction) and, when it has bundle lines (``bundled``), what they take of their
    bundles' SKUs out of stock, and the uses of the coupons its promotion lines need, all
    or nothing.

    Returns why it could not (empty on success); on failure nothing changed.
    One statement for the stock when there is enough (two more for bundle lines: their
    bundles read, what they take recorded). Does not commit.
    """
    if bundled:
        wanted = _record_bundles(session, order_id, wanted)
    problems = _take(session, order_id, mode, wanted)
    if problems:
        if bundled:
            _forget_bundles(session, order_id)
        return problems
    problems = promotions.take_coupon_uses(session, order_id, mode)
    if problems and wanted:
        release(session, order_id, mode)
    return problems


#: How many times a take whose SKUs all had enough when read again is tried again.
TAKE_ATTEMPTS = 3


def _take(session: Session, order_id: str, mode: Mode, wanted: Mapping[str, int]) -> list[str]:
    if not wanted:
        return []
    for _ in range(TAKE_ATTEMPTS):
        locked = _locked(order_id, mode, held=False)
        taken = (
            session.execute(
                update(Sku)
                .where(Sku.id == locked.c.id, Sku.stock_quantity >= locked.c.quantity)
                .values(stock_quantity=Sku.stock_quantity - locked.c.quantity)
                .returning(Sku.code)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        if len(taken) == len(wanted):
            record_reserved(session, [order_id])
            return []
        if taken:  # put back what was taken: the rows stay locked by us until the end
            _give_back(session, order_id, mode, taken, held=False)
        left: dict[str, int] = {
            code: quantity
            for code, quantity in session.execute(
                select(Sku.code, Sku.stock_quantity).where(Sku.mode == mode, Sku.code.in_(wanted))
            )
        }
        problems = [
            _shortage(code, wanted[code], left.get(code))
            for code in sorted(wanted)
            if code not in left or left[code] < wanted[code]
        ]
        if problems:
            return problems
        # Every SKU has enough now: stock given back (an order cancelled) after the take's
        # snapshot, which PostgreSQL read committed does not look at again for rows whose
        # snapshot said too few. Nothing was taken: take again, with a new snapshot.
    return [f"the stock of SKUs {', '.join(sorted(wanted))} kept changing: try again"]


#: PostgreSQL: many orders' demand taken in one statement, the SKUs' rows locked in id
#: order first (two chunks wanting the same SKUs cannot deadlock), each taken only if
#: there is enough of it.
_RESERVE_MANY = text(
    """WITH wanted AS (
        SELECT * FROM unnest(CAST(:modes AS text[]), CAST(:codes AS text[]),
            CAST(:quantities AS int[])) AS w(mode, code, quantity)),
    locked AS (
        SELECT s.id, wanted.quantity FROM skus AS s
        JOIN wanted ON s.mode = wanted.mode AND s.code = wanted.code
        ORDER BY s.id FOR UPDATE OF s)
    UPDATE skus SET stock_quantity = skus.stock_quantity - locked.quantity
    FROM locked WHERE skus.id = locked.id AND skus.stock_quantity >= locked.quantity
    RETURNING skus.id"""
)


def reserve_many(session: Session, wanted: Mapping[tuple[Mode, str], int]) -> bool:
    """Take ``wanted`` (quantity by SKU mode and code: the demand of many orders, added up)
    out of stock: one statement on PostgreSQL, one per SKU elsewhere (SQLite has one
    writer). False when some SKU is short or gone: then part may have been taken, and the
    caller must roll back. Does not commit."""
    if not wanted:
        return True
    if session.get_bind().dialect.name != "postgresql":
        taken = 0
        for (mode, code), quantity in wanted.items():
            result = session.execute(
                update(Sku)
                .where(Sku.mode == mode, Sku.code == code, Sku.stock_quantity >= quantity)
                .values(stock_quantity=Sku.stock_quantity - quantity)
                .execution_options(synchronize_session=False)
            )
            taken += result.rowcount  # type: ignore[attr-defined]
        return taken == len(wanted)
    taken_ids = session.execute(
        _RESERVE_MANY,
        {
            "modes": [str(mode) for mode, _ in wanted],
            "codes": [code for _, code in wanted],
            "quantities": list(wanted.values()),
        },
    )
    return len(taken_ids.all()) == len(wanted)


def record_reserved(session: Session, order_ids: Sequence[str]) -> None:
    """Record that the orders' SKU lines now hold their quantities (their stock was just
    taken in this transaction). Does not commit."""
    session.execute(
        update(LineItem)
        .where(LineItem.order_id.in_(order_ids), LineItem.item_type == ItemType.SKUS)
        .values(reserved_quantity=LineItem.quantity)
        .execution_options(synchronize_session=False)
    )


def release(session: Session, order_id: str, mode: Mode) -> None:
    """Put back the stock and the coupon uses the order's lines hold (as recorded when they
    were taken), and record that they hold none. Does not commit."""
    _give_back(session, order_id, mode, held=True)
    promotions.give_back_coupon_uses(session, order_id, mode)
    session.execute(
        update(LineItem)
        .where(LineItem.order_id == order_id, LineItem.reserved_quantity != 0)
        .values(reserved_quantity=0)
        .execution_options(synchronize_session=False)
    )
    _forget_bundles(session, order_id)


def _record_bundles(session: Session, order_id: str, wanted: Mapping[str, int]) -> dict[str, int]:
    """Record what each of the order's bundle lines takes of its bundle's SKUs (the
    bundle's list as read now, times the line's quantity); returns ``wanted`` with that
    added. Does not commit."""
    rows = session.execute(
        select(LineItem.id, LineItem.quantity, Bundle.sku_list_items)
        .join(Bundle, and_(Bundle.mode == LineItem.mode, Bundle.code == LineItem.bundle_code))
        .where(LineItem.order_id == order_id, LineItem.item_type == ItemType.BUNDLES)
    )
    total = dict(wanted)
    taking = []
    for line_id, quantity, sku_list in rows:
        for item in sku_list:
            code, each = item["sku_code"], quantity * item["quantity"]
            taking.append({"line_item_id": line_id, "sku_code": code, "quantity": each})
            total[code] = total.get(code, 0) + each
    insert_rows(session, _LINE_ITEM_STOCK, taking)
    return total


def _forget_bundles(session: Session, order_id: str) -> None:
    """The order's bundle lines hold nothing (their stock given back, or never taken)."""
    session.execute(
        delete(LineItemStock)
        .where(
            LineItemStock.line_item_id.in_(select(LineItem.id).where(LineItem.order_id == order_id))
        )
        .execution_options(synchronize_session=False)
    )


def _give_back(
    session: Session,
    order_id: str,
    mode: Mode,
    codes: Sequence[str] | None = None,
    *,
    held: bool,
) -> None:
    locked = _locked(order_id, mode, codes, held=held)
    session.execute(
        update(Sku)
        .where(Sku.id == locked.c.id)
        .values(stock_quantity=Sku.stock_quantity + locked.c.quantity)
        .execution_options(synchronize_session=False)
    )


def _shortage(code: str, wanted: int, left: int | None) -> str:
    if left is None:
        return f"SKU {code} is unknown"
    return f"SKU {code} is out of stock ({wanted} requested, {left} left)"
