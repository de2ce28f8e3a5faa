"""The demo, as data: a small catalog, a wallet, and one order copy per behaviour to show.

Every scenario copies its own source order, so the copies can run in any
order, side by side, and still end as expected: no two scenarios compete for
the same scarce stock or the same source order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from copying.copies.options import CopyOptions
from models import CopyStatus, OrderCopy

ORIGIN = "ordercopy demo"


@dataclass(frozen=True)
class SkuSpec:
    code: str
    name: str
    price_cents: int
    stock: int
    do_not_ship: bool = False
    discontinued: bool = False


CATALOG = (
    SkuSpec("TSHIRT-BLUE-M", "Blue T-shirt (M)", 2500, stock=1000),
    SkuSpec("MUG-WHITE", "White mug", 1200, stock=1000),
    SkuSpec("POSTER-A2", "Poster A2, limited run", 1800, stock=3),
    SkuSpec("LAMP-DESK", "Desk lamp, last one", 4900, stock=1),
    SkuSpec("CAP-RETRO", "Retro cap", 1500, stock=100, discontinued=True),
    SkuSpec("EBOOK-CARE", "Care guide (e-book, free)", 0, stock=100_000, do_not_ship=True),
)

#: Wallet entries by name: (gateway token, card name, expired?).
WALLET = {
    "visa": ("tok_visa", "Visa •••• 4242", False),
    "declined": ("tok_declined", "Visa •••• 0002 (declines)", False),
    "flaky": ("tok_flaky", "Visa •••• 1881 (gateway times out twice)", False),
    "expired": ("tok_visa", "Visa •••• 1111 (expired)", True),
}


@dataclass(frozen=True)
class SourceSpec:
    """A source order: SKU lines, the wallet entry it was paid with, how far it got."""

    lines: tuple[tuple[str, int], ...]
    wallet: str | None = "visa"
    #: Placed through :func:`copying.orders.placing.place_order` (so the copy may cancel it).
    placed: bool = False
    shipping_address: bool = True
    discount_cents: int = 0


@dataclass(frozen=True)
class Scenario:
    demo: str
    source: SourceSpec
    expect: CopyStatus
    #: The ``errors_log`` key that must hold a message; None: no errors at all.
    expect_error: str | None = None
    options: CopyOptions = field(default_factory=CopyOptions)

    @property
    def reference(self) -> str:
        return f"demo: {self.demo}"

    def metadata(self, batch: str) -> dict[str, Any]:
        expected: dict[str, Any] = {"demo": self.demo, "expect": self.expect.value, "batch": batch}
        if self.expect_error is not None:
            expected["expect_error"] = self.expect_error
        return expected


COMPLETED, FAILED = CopyStatus.COMPLETED, CopyStatus.FAILED
TSHIRT, MUG, POSTER, LAMP, CAP, EBOOK = (sku.code for sku in CATALOG)

SCENARIOS = (
    # Each option alone.
    Scenario("plain copy, wallet reused (the defaults)", SourceSpec(((TSHIRT, 2),)), COMPLETED),
    Scenario(
        "copy without reusing the wallet",
        SourceSpec(((MUG, 1),)),
        COMPLETED,
        options=CopyOptions(reuse_wallet=False),
    ),
    Scenario(
        "place the target order",
        SourceSpec(((TSHIRT, 1), (MUG, 2))),
        COMPLETED,
        options=CopyOptions(place_target_order=True),
    ),
    Scenario(
        "cancel the source order",
        SourceSpec(((MUG, 1),), placed=True),
        COMPLETED,
        options=CopyOptions(cancel_source_order=True),
    ),
    Scenario(
        "skip errors: copy what can be copied",
        SourceSpec(((MUG, 1), (POSTER, 5))),
        COMPLETED,
        expect_error="line_items",
        options=CopyOptions(skip_errors=True),
    ),
    # Options combined.
    Scenario(
        "reorder and replace: place target, cancel source, reuse wallet",
        SourceSpec(((TSHIRT, 1), (MUG, 1)), placed=True, discount_cents=-500),
        COMPLETED,
        options=CopyOptions(place_target_order=True, cancel_source_order=True),
    ),
    Scenario(
        "all options, skipping a discontinued SKU",
        SourceSpec(((TSHIRT, 1), (CAP, 1)), placed=True),
        COMPLETED,
        expect_error="line_items",
        options=CopyOptions(place_target_order=True, cancel_source_order=True, skip_errors=True),
    ),
    Scenario(
        "declined card with skip errors: target kept unplaced",
        SourceSpec(((MUG, 1),), wallet="declined"),
        COMPLETED,
        expect_error="payment",
        options=CopyOptions(place_target_order=True, skip_errors=True),
    ),
    Scenario(
        "the last lamp in stock is placed",
        SourceSpec(((LAMP, 1),)),
        COMPLETED,
        options=CopyOptions(place_target_order=True),
    ),
    Scenario(
        "zero-total order placed without a payment source",
        SourceSpec(((EBOOK, 1),), wallet=None, shipping_address=False),
        COMPLETED,
        options=CopyOptions(place_target_order=True),
    ),
    Scenario(
        "flaky gateway: placed after two transient failures",
        SourceSpec(((TSHIRT, 1),), wallet="flaky"),
        COMPLETED,
        options=CopyOptions(place_target_order=True),
    ),
    # Failures: business errors end in `failed`, with the reason in errors_log.
    Scenario(
        "out of stock",
        SourceSpec(((POSTER, 5),)),
        FAILED,
        expect_error="line_items",
        options=CopyOptions(place_target_order=True),
    ),
    Scenario("discontinued SKU", SourceSpec(((CAP, 2),)), FAILED, expect_error="line_items"),
    Scenario(
        "expired wallet entry",
        SourceSpec(((TSHIRT, 1),), wallet="expired"),
        FAILED,
        expect_error="payment_source",
        options=CopyOptions(place_target_order=True),
    ),
    Scenario(
        "declined card",
        SourceSpec(((MUG, 3),), wallet="declined"),
        FAILED,
        expect_error="payment",
        options=CopyOptions(place_target_order=True),
    ),
    Scenario(
        "nothing to pay with: wallet not reused",
        SourceSpec(((TSHIRT, 1),)),
        FAILED,
        expect_error="target_order",
        options=CopyOptions(place_target_order=True, reuse_wallet=False),
    ),
    Scenario(
        "source not cancellable (never placed)",
        SourceSpec(((MUG, 1),)),
        FAILED,
        expect_error="source_order",
        options=CopyOptions(cancel_source_order=True),
    ),
    Scenario("empty source order", SourceSpec(()), FAILED, expect_error="line_items"),
)


def expectation(copy: OrderCopy) -> tuple[str | None, str | None]:
    """The status and the ``errors_log`` key the demo expects of ``copy``."""
    return copy.metadata_.get("expect"), copy.metadata_.get("expect_error")


def turned_out_as_expected(copy: OrderCopy) -> bool:
    """Finished in the expected status, with errors under the expected key (or none)."""
    status, error_key = expectation(copy)
    if copy.status != status:
        return False
    if error_key is None:
        return copy.errors_count == 0
    return bool(copy.errors_log.get(error_key))
