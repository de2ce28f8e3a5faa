"""``skus``: the catalog copies reprice against (stock and discontinued are how ops fix
what made a copy fail); ``bundles`` and ``adjustments``: what a subscription item may
name besides a SKU (Commerce Layer's). The rules beyond a column's own live in
``copying.orders.catalog``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from api.errors import ApiError
from api.resources.common import CURRENCY_CODE, TIMESTAMPS, plain_create, plain_delete
from api.spec import Attribute, Context, Resource
from copying.orders import catalog
from models import Adjustment, Bundle, Sku


def _unique_code(model: type[Sku] | type[Bundle], noun: str) -> Callable[[Context, Any], None]:
    """A create check: the code is not taken in the key's mode."""

    def check(ctx: Context, values: dict[str, Any]) -> None:
        code = values.get("code")
        taken = ctx.session.scalar(
            select(model.id).where(model.mode == ctx.mode, model.code == code)
        )
        if taken is not None:
            raise ApiError(422, f"{noun} code {code!r} is taken", pointer="/data/attributes/code")

    return check


def _code() -> Attribute:
    """A code unique in its mode (checked by :func:`_unique_code`)."""
    return Attribute(
        "code",
        "string",
        writable="create",
        required=True,
        nullable=False,
        max_length=64,
        filterable=True,
        sortable=True,
    )


NAME = Attribute(
    "name",
    "string",
    writable="always",
    required=True,
    nullable=False,
    max_length=255,
    filterable=True,
)
DISCONTINUED = Attribute(
    "discontinued", "boolean", writable="always", nullable=False, filterable=True
)

SKUS = Resource(
    type="skus",
    model=Sku,
    attributes=(
        _code(),
        NAME,
        Attribute(
            "unit_amount_cents",
            "integer",
            writable="always",
            required=True,
            nullable=False,
            minimum=0,
            filterable=True,
            sortable=True,
        ),
        CURRENCY_CODE,
        Attribute(
            "stock_quantity",
            "integer",
            writable="always",
            nullable=False,
            minimum=0,
            filterable=True,
            sortable=True,
        ),
        Attribute("do_not_ship", "boolean", writable="always", nullable=False, filterable=True),
        DISCONTINUED,
        *TIMESTAMPS,
    ),
    create=plain_create(Sku, check=_unique_code(Sku, "SKU")),
    delete=plain_delete,
)


def _check_new_bundle(ctx: Context, values: dict[str, Any]) -> None:
    _unique_code(Bundle, "bundle")(ctx, values)
    catalog.check_sku_list(ctx.session, ctx.mode, values.get("sku_list_items") or [])


def _check_bundle(ctx: Context, bundle: Bundle, changed: set[str]) -> None:
    if "sku_list_items" in changed:
        catalog.check_sku_list(ctx.session, ctx.mode, bundle.sku_list_items)


BUNDLES = Resource(
    type="bundles",
    model=Bundle,
    description=(
        "SKUs sold together at one price. A subscription item may name one (bundle_code); "
        "a placed bundle line holds its SKUs' stock, as recorded when it took it."
    ),
    attributes=(
        _code(),
        NAME,
        CURRENCY_CODE,
        Attribute(
            "price_amount_cents",
            "integer",
            writable="always",
            required=True,
            nullable=False,
            minimum=0,
            filterable=True,
            sortable=True,
        ),
        Attribute(
            "compare_at_amount_cents",
            "integer",
            writable="always",
            minimum=0,
            filterable=True,
            sortable=True,
            description="A price to compare with (a discount shown), or null.",
        ),
        Attribute(
            "sku_list_items",
            "array",
            writable="always",
            required=True,
            nullable=False,
            description='Its SKUs, each once, with quantities: [{"sku_code": "TEE", '
            '"quantity": 2}, ...] (1 to 100; SKUs of the mode). Commerce Layer keeps them '
            "in a sku_list.",
        ),
        Attribute(
            "skus_count",
            "integer",
            nullable=False,
            read=lambda bundle: len(bundle.sku_list_items),
            description="How many SKUs the list names.",
        ),
        DISCONTINUED,
        *TIMESTAMPS,
    ),
    create=plain_create(Bundle, check=_check_new_bundle),
    check_updated=_check_bundle,
    delete=plain_delete,
)


def _delete_adjustment(ctx: Context, adjustment: Adjustment) -> None:
    catalog.check_adjustment_unused(ctx.session, adjustment)
    plain_delete(ctx, adjustment)


ADJUSTMENTS = Resource(
    type="adjustments",
    model=Adjustment,
    description=(
        "An amount added to an order (a fee) or, negative, taken off (a discount). A "
        "subscription item may name one: each renewal gets an adjustment line of it."
    ),
    attributes=(
        NAME,
        CURRENCY_CODE,
        Attribute(
            "amount_cents",
            "integer",
            writable="always",
            required=True,
            nullable=False,
            filterable=True,
            sortable=True,
            description="Negative: a discount.",
        ),
        Attribute(
            "distribute_discount",
            "boolean",
            writable="always",
            nullable=False,
            filterable=True,
            description="Commerce Layer's (a negative amount spread over the lines for "
            "taxes); ordercopy computes no taxes and keeps it for clients that read it.",
        ),
        *TIMESTAMPS,
    ),
    create=plain_create(Adjustment),
    delete=_delete_adjustment,
)
