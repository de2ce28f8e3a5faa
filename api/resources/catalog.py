"""``skus``: the catalog copies reprice against (stock and discontinued are how ops fix
what made a copy fail)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from api.errors import ApiError
from api.resources.common import CURRENCY, TIMESTAMPS, plain_create, plain_delete
from api.spec import Attribute, Context, Resource
from models import Sku


def _unique_code(ctx: Context, values: dict[str, Any]) -> None:
    taken = ctx.session.scalar(
        select(Sku.id).where(Sku.mode == ctx.mode, Sku.code == values.get("code"))
    )
    if taken is not None:
        raise ApiError(
            422, f"SKU code {values.get('code')!r} is taken", pointer="/data/attributes/code"
        )


SKUS = Resource(
    type="skus",
    model=Sku,
    attributes=(
        Attribute(
            "code",
            "string",
            writable="create",
            required=True,
            nullable=False,
            max_length=64,
            filterable=True,
            sortable=True,
        ),
        Attribute(
            "name",
            "string",
            writable="always",
            required=True,
            nullable=False,
            max_length=255,
            filterable=True,
        ),
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
        Attribute(
            "currency_code",
            "string",
            writable="create",
            required=True,
            nullable=False,
            pattern=CURRENCY,
            filterable=True,
            description="ISO 4217, e.g. USD",
        ),
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
        Attribute("discontinued", "boolean", writable="always", nullable=False, filterable=True),
        *TIMESTAMPS,
    ),
    create=plain_create(Sku, check=_unique_code),
    delete=plain_delete,
)
