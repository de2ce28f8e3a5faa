"""``promotions`` (every kind, read-only), ``percentage_discount_promotions`` and
``fixed_amount_promotions`` (Commerce Layer's names for the two kinds), and ``coupons``.

The rules (a promotion's terms, coupon codes, uses) live in ``copying.orders.promotions``;
their CopyInputError becomes a 422 pointing at the attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.resources.common import CURRENCY, METADATA, TIMESTAMPS, choices, plain_create
from api.spec import Attribute, Context, Relationship, Resource
from copying.orders import promotions
from models import (
    Coupon,
    FixedAmountPromotion,
    PercentageDiscountPromotion,
    Promotion,
    PromotionKind,
    utcnow,
)

#: A coupon code: ASCII letters, digits, ``-`` and ``_`` (matched whatever the case).
COUPON_CODE = "^[A-Za-z0-9_-]{1,64}$"
COUPONS_RELATIONSHIP = Relationship("coupons", "coupons", inverse="promotion_id")


def _active(promotion: Promotion) -> bool:
    return promotion.starts_at <= utcnow() < promotion.expires_at


def _attributes(kind: PromotionKind | None) -> tuple[Attribute, ...]:
    """A kind's attributes (its amount writable), or every kind's (None: read-only)."""
    writable: Any = "always" if kind is not None else "no"
    fixed = kind == PromotionKind.FIXED_AMOUNT
    amounts = {
        PromotionKind.PERCENTAGE_DISCOUNT: Attribute(
            "percentage",
            "integer",
            writable=writable,
            required=kind is not None,
            nullable=kind is None,
            minimum=1,
            description="The discount, in percent (1 to 100) of the lines it covers.",
        ),
        PromotionKind.FIXED_AMOUNT: Attribute(
            "fixed_amount_cents",
            "integer",
            writable=writable,
            required=kind is not None,
            nullable=kind is None,
            minimum=1,
            description="The discount, in cents, at most the amount of the lines it covers.",
        ),
    }
    return (
        *(
            ()
            if kind is not None
            else (
                Attribute(
                    "promotion_type",
                    "string",
                    column="kind",
                    nullable=False,
                    filterable=True,
                    choices=choices(PromotionKind),
                    description="Its kind: the type its own resource has.",
                ),
            )
        ),
        Attribute(
            "name",
            "string",
            writable=writable,
            required=kind is not None,
            nullable=False,
            max_length=255,
            filterable=True,
            sortable=True,
            description="The name its promotion lines carry.",
        ),
        Attribute(
            "currency_code",
            "string",
            writable=writable,
            required=fixed,
            nullable=not fixed,
            pattern=CURRENCY,
            filterable=True,
            description="Only orders in this currency (ISO 4217); null: any.",
        ),
        Attribute(
            "starts_at",
            "datetime",
            writable=writable,
            required=kind is not None,
            nullable=False,
            filterable=True,
            sortable=True,
        ),
        Attribute(
            "expires_at",
            "datetime",
            writable=writable,
            required=kind is not None,
            nullable=False,
            filterable=True,
            sortable=True,
            description="After starts_at.",
        ),
        *(amounts.values() if kind is None else (amounts[kind],)),
        Attribute(
            "sku_codes",
            "array",
            writable=writable,
            description="The SKU codes it discounts; null: every SKU and bundle line.",
        ),
        Attribute(
            "active",
            "boolean",
            nullable=False,
            read=_active,
            description="Whether it applies now (starts_at <= now < expires_at).",
        ),
        METADATA if kind is not None else Attribute("metadata", "object", column="metadata_"),
        *TIMESTAMPS,
    )


def _check_new(kind: PromotionKind) -> Callable[[Context, dict[str, Any]], None]:
    def check(ctx: Context, values: dict[str, Any]) -> None:
        promotions.check_terms(kind, values)

    return check


def _check_updated(ctx: Context, promotion: Promotion, changed: set[str]) -> None:
    promotions.check_terms(
        promotion.kind, {name: getattr(promotion, name) for name in promotions.TERMS}
    )


def _delete_promotion(ctx: Context, promotion: Promotion) -> None:
    promotions.check_promotion_deletable(ctx.session, promotion)
    ctx.session.delete(promotion)


def _kind(kind: PromotionKind, model: type[Promotion], description: str) -> Resource:
    return Resource(
        type=kind.value,
        model=model,
        description=description,
        attributes=_attributes(kind),
        relationships=(COUPONS_RELATIONSHIP,),
        create=plain_create(model, defaults={"metadata_": {}}, check=_check_new(kind)),
        check_updated=_check_updated,
        delete=_delete_promotion,
    )


PROMOTIONS = Resource(
    type="promotions",
    model=Promotion,
    description="Every promotion, whatever its kind; each kind is written through its own.",
    attributes=_attributes(None),
    relationships=(COUPONS_RELATIONSHIP,),
)
PERCENTAGE_DISCOUNT_PROMOTIONS = _kind(
    PromotionKind.PERCENTAGE_DISCOUNT,
    PercentageDiscountPromotion,
    "A percentage off the SKU lines it covers, while active.",
)
FIXED_AMOUNT_PROMOTIONS = _kind(
    PromotionKind.FIXED_AMOUNT,
    FixedAmountPromotion,
    "A fixed amount off the SKU lines it covers, while active.",
)


def _check_new_coupon(ctx: Context, values: dict[str, Any]) -> None:
    promotions.check_code_free(ctx.session, ctx.mode, values["code"])


def _check_coupon_updated(ctx: Context, coupon: Coupon, changed: set[str]) -> None:
    promotions.check_usage_limit(coupon)


def _delete_coupon(ctx: Context, coupon: Coupon) -> None:
    promotions.check_coupon_deletable(coupon)
    ctx.session.delete(coupon)


COUPONS = Resource(
    type="coupons",
    model=Coupon,
    description="Codes that unlock their promotion for the order carrying one (coupon_code).",
    attributes=(
        Attribute(
            "code",
            "string",
            writable="create",
            required=True,
            nullable=False,
            pattern=COUPON_CODE,
            filterable=True,
            sortable=True,
            description="Unique in its mode, whatever the case; ASCII letters, digits, - and _.",
        ),
        Attribute(
            "usage_limit",
            "integer",
            writable="always",
            minimum=1,
            filterable=True,
            sortable=True,
            description="How many placed orders may use it; null: any number.",
        ),
        Attribute(
            "usage_count",
            "integer",
            nullable=False,
            filterable=True,
            sortable=True,
            description="The placed orders using it (a cancelled one gives its use back).",
        ),
        Attribute("expires_at", "datetime", writable="always", filterable=True, sortable=True),
        *TIMESTAMPS,
    ),
    relationships=(
        Relationship(
            "promotion", "promotions", column="promotion_id", writable="create", required=True
        ),
    ),
    create=plain_create(Coupon, check=_check_new_coupon),
    check_updated=_check_coupon_updated,
    delete=_delete_coupon,
    extra_filters={"promotion_id": "string"},
)
