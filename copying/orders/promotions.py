"""Promotions and coupons: which apply to an order, the promotion lines they make, and the
coupon uses an order holds once placed.

One rule for every order: the API's edits (``order_edits.refresh``) and a copy asked to
``apply_promotions`` both call :func:`apply`. A promotion applies to an order of its mode
(and currency, when it names one) while ``starts_at <= now < expires_at``; a promotion
with coupons applies only to an order that carries one of them, still valid. Each makes
one line of type ``promotions``: a percentage of the SKU and bundle lines it covers
(rounded half up), or a fixed amount, at most those lines' amount. Percentages go first,
then fixed amounts, each by start time; no discount takes the order's total below zero
(the last ones are cut).

A coupon's use is taken when its order is placed (``stock.reserve``, under the coupon's
row lock, only while uses are left: two orders racing for the last use cannot both get
it) and given back when the order is cancelled or not placed after all
(``stock.release``). The promotion line a coupon unlocked records the use it holds in its
``reserved_quantity``, as SKU lines record their stock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import exists, false, func, or_, select, update
from sqlalchemy.orm import Session

from copying.errors import CopyInputError, InUseError
from copying.orders import targets
from models import Coupon, ItemType, LineItem, Mode, Promotion, PromotionKind

#: The lines a promotion discounts.
DISCOUNTED = frozenset({ItemType.SKUS, ItemType.BUNDLES})
#: As long as a SKU's code may be.
SKU_CODE_LENGTH = 64


class Offer(NamedTuple):
    """A promotion as it applies to an order."""

    promotion_id: str
    kind: PromotionKind
    name: str
    percentage: int | None
    fixed_amount_cents: int | None
    sku_codes: list[str] | None
    #: The coupon that unlocked it (its code as created), if it needs one.
    coupon_code: str | None
    starts_at: datetime


def find_coupon(session: Session, mode: Mode, code: str) -> Coupon | None:
    """The coupon of ``mode`` whose code is ``code``, whatever the letters' case."""
    return session.scalar(
        select(Coupon).where(Coupon.mode == mode, func.lower(Coupon.code) == code.lower())
    )


def problem_with_promotion(
    promotion: Promotion, currency_code: str, now: datetime, *, what: str
) -> str | None:
    """Why ``promotion`` cannot apply to an order in ``currency_code`` now, or None."""
    if now < promotion.starts_at:
        return f"{what} starts on {_day(promotion.starts_at)}"
    if now >= promotion.expires_at:
        return f"{what} expired on {_day(promotion.expires_at)}"
    if promotion.currency_code is not None and promotion.currency_code != currency_code:
        return f"{what} is for {promotion.currency_code} orders, the order is in {currency_code}"
    return None


def problem_with_coupon(
    session: Session, mode: Mode, code: str, currency_code: str, now: datetime
) -> str | None:
    """Why the coupon ``code`` cannot go on an order of ``mode`` in ``currency_code`` now
    (unknown, expired, used up, its promotion not active or for another currency), or
    None."""
    return _coupon_problem(
        session, find_coupon(session, mode, code), code, mode, currency_code, now
    )


def _coupon_problem(
    session: Session,
    coupon: Coupon | None,
    code: str,
    mode: Mode,
    currency_code: str,
    now: datetime,
) -> str | None:
    if coupon is None:
        return f"coupon {code} does not exist in {mode} mode"
    if coupon.expires_at is not None and now >= coupon.expires_at:
        return f"coupon {coupon.code} expired on {_day(coupon.expires_at)}"
    if coupon.usage_limit is not None and coupon.usage_count >= coupon.usage_limit:
        uses = f"{coupon.usage_count} uses of {coupon.usage_limit}"
        return f"coupon {coupon.code} has been used up ({uses})"
    promotion = session.get_one(Promotion, coupon.promotion_id)
    return problem_with_promotion(
        promotion, currency_code, now, what=f"coupon {coupon.code}'s promotion {promotion.name!r}"
    )


def offers(
    session: Session, mode: Mode, currency_code: str, coupon_code: str | None, now: datetime
) -> list[Offer]:
    """The promotions an order of ``mode`` in ``currency_code`` carrying ``coupon_code`` gets
    now, in the order they apply."""
    coupon = find_coupon(session, mode, coupon_code) if coupon_code else None
    if coupon_code and _coupon_problem(session, coupon, coupon_code, mode, currency_code, now):
        coupon = None
    needs_coupon = exists().where(Coupon.promotion_id == Promotion.id)
    unlocked = Promotion.id == coupon.promotion_id if coupon is not None else false()
    found = session.scalars(
        select(Promotion).where(
            Promotion.mode == mode,
            Promotion.starts_at <= now,
            Promotion.expires_at > now,
            or_(Promotion.currency_code.is_(None), Promotion.currency_code == currency_code),
            or_(~needs_coupon, unlocked),
        )
    ).all()
    applying = [
        Offer(
            p.id,
            p.kind,
            p.name,
            p.percentage,
            p.fixed_amount_cents,
            p.sku_codes,
            coupon.code if coupon is not None and p.id == coupon.promotion_id else None,
            p.starts_at,
        )
        for p in found
    ]
    return sorted(
        applying,
        key=lambda o: (o.kind != PromotionKind.PERCENTAGE_DISCOUNT, o.starts_at, o.promotion_id),
    )


def discount_lines(lines: Sequence[targets.Line], applying: Sequence[Offer]) -> list[targets.Line]:
    """The promotion lines ``applying`` make on an order of ``lines`` (its promotion lines
    left out), each cut so that the total stays at zero or more."""
    amounts = targets.line_totals([line for line in lines if line.item_type != ItemType.PROMOTIONS])
    room = max(0, amounts["subtotal_amount_cents"] + amounts["adjustment_amount_cents"])
    made = []
    for offer in applying:
        base = sum(
            line.unit_amount_cents * line.quantity
            for line in lines
            if line.item_type in DISCOUNTED
            and (
                offer.sku_codes is None
                or (line.item_type == ItemType.SKUS and line.sku_code in offer.sku_codes)
            )
        )
        if base <= 0:
            continue
        if offer.kind == PromotionKind.PERCENTAGE_DISCOUNT:
            amount = (base * (offer.percentage or 0) + 50) // 100
        else:
            amount = min(offer.fixed_amount_cents or 0, base)
        amount = min(amount, room)
        if amount <= 0:
            continue
        room -= amount
        made.append(
            targets.Line(
                item_type=ItemType.PROMOTIONS,
                sku_code=None,
                name=offer.name,
                quantity=1,
                unit_amount_cents=-amount,
                options=[],
                metadata_={},
                promotion_id=offer.promotion_id,
                coupon_code=offer.coupon_code,
            )
        )
    return made


def apply(
    session: Session,
    mode: Mode,
    currency_code: str,
    coupon_code: str | None,
    lines: Sequence[targets.Line],
    now: datetime,
) -> list[targets.Line]:
    """``lines`` with their promotion lines made again: those of the promotions the order
    gets now (:func:`offers`), after the others, which stay as they are."""
    kept = [line for line in lines if line.item_type != ItemType.PROMOTIONS]
    return kept + discount_lines(kept, offers(session, mode, currency_code, coupon_code, now))


def without_coupon(lines: Sequence[targets.Line], code: str) -> list[targets.Line]:
    """``lines`` but the promotion lines the coupon ``code`` unlocked."""
    return [
        line
        for line in lines
        if not (
            line.item_type == ItemType.PROMOTIONS
            and line.coupon_code is not None
            and line.coupon_code.lower() == code.lower()
        )
    ]


# --- the uses a placed order holds ------------------------------------------------------------


def _coupon_lines(order_id: str, *, held: bool):  # type: ignore[no-untyped-def]
    return (
        select(func.lower(LineItem.coupon_code))
        .where(
            LineItem.order_id == order_id,
            LineItem.item_type == ItemType.PROMOTIONS,
            LineItem.coupon_code.is_not(None),
            (LineItem.reserved_quantity > 0) if held else (LineItem.reserved_quantity == 0),
        )
        .distinct()
    )


def take_coupon_uses(session: Session, order_id: str, mode: Mode) -> list[str]:
    """Take one use of each coupon the order's promotion lines need, all or nothing, and
    record it on those lines. Returns why not (a coupon used up meanwhile, or gone); then
    nothing changed. One statement when nothing is needed. Does not commit."""
    codes = set(session.scalars(_coupon_lines(order_id, held=False)))
    if not codes:
        return []
    taken = set(
        session.scalars(
            update(Coupon)
            .where(
                Coupon.mode == mode,
                func.lower(Coupon.code).in_(codes),
                or_(Coupon.usage_limit.is_(None), Coupon.usage_count < Coupon.usage_limit),
            )
            .values(usage_count=Coupon.usage_count + 1)
            .returning(func.lower(Coupon.code))
            .execution_options(synchronize_session=False)
        )
    )
    if taken != codes:
        if taken:
            _give_back(session, mode, taken)
        return [_not_taken(session, mode, code) for code in sorted(codes - taken)]
    session.execute(
        update(LineItem)
        .where(
            LineItem.order_id == order_id,
            LineItem.item_type == ItemType.PROMOTIONS,
            LineItem.coupon_code.is_not(None),
        )
        .values(reserved_quantity=1)
        .execution_options(synchronize_session=False)
    )
    return []


def give_back_coupon_uses(session: Session, order_id: str, mode: Mode) -> None:
    """Give back the coupon uses the order's lines hold (the caller then records that they
    hold none: ``stock.release``). Does not commit."""
    codes = set(session.scalars(_coupon_lines(order_id, held=True)))
    if codes:
        _give_back(session, mode, codes)


def _give_back(session: Session, mode: Mode, codes: set[str]) -> None:
    session.execute(
        update(Coupon)
        .where(Coupon.mode == mode, func.lower(Coupon.code).in_(codes), Coupon.usage_count > 0)
        .values(usage_count=Coupon.usage_count - 1)
        .execution_options(synchronize_session=False)
    )


def _not_taken(session: Session, mode: Mode, code: str) -> str:
    coupon = find_coupon(session, mode, code)
    if coupon is None:
        return f"coupon {code} no longer exists"
    return f"coupon {coupon.code} has been used up ({coupon.usage_limit} uses)"


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# --- the resources' rules -------------------------------------------------------------------

#: The most SKU codes a promotion names.
MAX_SKU_CODES = 100
#: A promotion's terms, as its columns name them.
TERMS = (
    "currency_code",
    "starts_at",
    "expires_at",
    "percentage",
    "fixed_amount_cents",
    "sku_codes",
)


def check_terms(kind: PromotionKind, terms: Mapping[str, Any]) -> None:
    """Raise CopyInputError naming the first of a promotion's ``terms`` (:data:`TERMS`, by
    column) that does not hold: its window, its amount for its kind, its SKU codes."""
    starts_at, expires_at = terms.get("starts_at"), terms.get("expires_at")
    if starts_at is not None and expires_at is not None and expires_at <= starts_at:
        raise CopyInputError("expires_at", "must be after starts_at")
    if kind == PromotionKind.PERCENTAGE_DISCOUNT:
        percentage = terms.get("percentage")
        if percentage is None or not 1 <= percentage <= 100:
            raise CopyInputError("percentage", f"must be from 1 to 100, not {percentage}")
    elif not terms.get("currency_code"):
        raise CopyInputError("currency_code", "a fixed amount is in a currency: name it")
    codes = terms.get("sku_codes")
    if codes is None:
        return
    if not codes or len(codes) > MAX_SKU_CODES:
        raise CopyInputError(
            "sku_codes",
            f"must name 1 to {MAX_SKU_CODES} SKU codes, or be null for every SKU",
        )
    for code in codes:
        if not isinstance(code, str) or not 1 <= len(code) <= SKU_CODE_LENGTH:
            raise CopyInputError(
                "sku_codes", f"must be SKU codes (1 to {SKU_CODE_LENGTH} characters), not {code!r}"
            )
    if len(set(codes)) != len(codes):
        raise CopyInputError("sku_codes", "names a SKU code twice")


def check_promotion_deletable(session: Session, promotion: Promotion) -> None:
    """Raise InUseError while coupons unlock ``promotion``: they go first."""
    if session.scalar(select(exists().where(Coupon.promotion_id == promotion.id))):
        raise InUseError(f"promotion {promotion.id} has coupons; delete them first")


def check_code_free(session: Session, mode: Mode, code: str) -> None:
    """Raise CopyInputError (``code``) if a coupon of ``mode`` has ``code``, in any case."""
    taken = find_coupon(session, mode, code)
    if taken is not None:
        raise CopyInputError(
            "code", f"coupon code {code!r} is taken by {taken.code!r} (codes ignore case)"
        )


def check_usage_limit(coupon: Coupon) -> None:
    """Raise CopyInputError (``usage_limit``) if the coupon's limit is below its uses.
    Caller holds the coupon's row lock (a placing that takes a use waits for it)."""
    if coupon.usage_limit is not None and coupon.usage_limit < coupon.usage_count:
        raise CopyInputError(
            "usage_limit",
            f"is below the {coupon.usage_count} uses placed orders hold",
        )


def check_coupon_deletable(coupon: Coupon) -> None:
    """Raise InUseError while placed orders hold uses of ``coupon``: they give them back
    when cancelled."""
    if coupon.usage_count > 0:
        raise InUseError(
            f"coupon {coupon.code} is used by {coupon.usage_count} placed orders; it stays"
        )
