"""The catalog's rules beyond a column's own: a bundle's SKU list, and what is not deleted
while a subscription item names it. Callers own the transaction; nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from copying.errors import CopyInputError, InUseError
from models import Adjustment, Mode, OrderSubscriptionItem, Sku
from models.base import storable

#: The most SKUs a bundle's list names.
MAX_SKU_LIST_ITEMS = 100
SKU_LIST_KEYS = frozenset({"sku_code", "quantity"})


def check_sku_list(session: Session, mode: Mode, items: Sequence[Any]) -> None:
    """Raise CopyInputError (``sku_list_items``) unless ``items`` is a bundle's SKU list:
    1 to :data:`MAX_SKU_LIST_ITEMS` objects ``{"sku_code", "quantity"}``, each SKU of
    ``mode`` named once, each quantity a whole number of at least 1 (4 bytes)."""
    field = "sku_list_items"
    if not items:
        raise CopyInputError(field, "a bundle names at least one SKU")
    if len(items) > MAX_SKU_LIST_ITEMS:
        raise CopyInputError(field, f"a bundle names at most {MAX_SKU_LIST_ITEMS} SKUs")
    codes: list[str] = []
    for index, item in enumerate(items):
        where = f"item {index}"
        if not isinstance(item, dict) or set(item) != SKU_LIST_KEYS:
            raise CopyInputError(field, f"{where} is not an object of sku_code and quantity")
        code, quantity = item["sku_code"], item["quantity"]
        if not isinstance(code, str) or not 0 < len(code) <= 64 or not storable(code):
            raise CopyInputError(field, f"{where}'s sku_code is not a SKU code")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise CopyInputError(field, f"{where}'s quantity is not a whole number of 1 or more")
        if quantity > 2**31 - 1:
            raise CopyInputError(field, f"{where}'s quantity is too large")
        if code in codes:
            raise CopyInputError(field, f"SKU {code} is named twice")
        codes.append(code)
    known = set(session.scalars(select(Sku.code).where(Sku.mode == mode, Sku.code.in_(codes))))
    unknown = [code for code in codes if code not in known]
    if unknown:
        raise CopyInputError(field, f"SKU {unknown[0]} does not exist in {mode} mode")


def check_adjustment_unused(session: Session, adjustment: Adjustment) -> None:
    """Raise InUseError while a subscription item names the adjustment: it renews it."""
    named = session.scalar(
        select(exists().where(OrderSubscriptionItem.adjustment_id == adjustment.id))
    )
    if named:
        raise InUseError(
            f"adjustment {adjustment.id} is named by order subscription items; remove them first"
        )
