"""End to end over HTTP with a real Celery worker (in a thread, on Redis): a web app
builds its catalog, customer, wallet, addresses and an order through the API,
copies it with each option, polls until the worker is done and reads the target
order back."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.api.shop import Shop, build_shop

pytestmark = [pytest.mark.worker, pytest.mark.slow]
FINISHED = ("completed", "failed")


def wait_until_finished(api: Api, copy_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll the copy until the worker finished it; fail after ``timeout`` seconds.

    Returns the copy, its ``included`` source and target orders under ``included``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(f"/api/order_copies/{copy_id}", include="source_order,target_order")
        assert response.status_code == 200, response.json()
        copy: dict[str, Any] = response.json()["data"]
        if copy["attributes"]["status"] in FINISHED:
            copy["included"] = response.json()["included"]
            return copy
        time.sleep(0.1)
    raise AssertionError(f"order copy {copy_id} still {copy['attributes']['status']}")


def copy_order(api: Api, shop: Shop, **options: Any) -> dict[str, Any]:
    copy = api.create("order_copies", options, {"source_order": ("orders", shop.order["id"])})
    assert copy["attributes"]["status"] == "pending"
    return wait_until_finished(api, copy["id"])


def add_line(api: Api, order_id: str, **attributes: Any) -> None:
    response = api.post(
        "/api/line_items",
        {
            "data": {
                "type": "line_items",
                "attributes": attributes,
                "relationships": {"order": {"data": {"type": "orders", "id": order_id}}},
            }
        },
    )
    assert response.status_code == 201, response.json()


@pytest.fixture
def shop(api) -> Shop:
    """A placed source order: 2 TEE at 15.00, 1 CAP at 9.00, a 5.00 discount, shipping.

    The catalog is repriced afterwards (TEE at 17.00), as it would be by the time
    a subscription renews: a copy keeps the prices the source was sold at.
    """
    shop = build_shop(api, code="TEE", price=1500, stock=20, quantity=2, place=False)
    api.create(
        "skus",
        {
            "code": "CAP",
            "name": "CAP cap",
            "unit_amount_cents": 900,
            "currency_code": "USD",
            "stock_quantity": 20,
        },
    )
    add_line(api, shop.order["id"], sku_code="CAP", quantity=1)
    add_line(api, shop.order["id"], item_type="adjustments", name="Welcome", unit_amount_cents=-500)
    add_line(api, shop.order["id"], item_type="shipments", name="Courier", unit_amount_cents=700)
    placed = api.update("orders", shop.order["id"], {"_place": True})
    assert placed.status_code == 200, placed.json()
    assert placed.json()["data"]["attributes"]["total_amount_cents"] == 3400
    api.update("skus", shop.sku["id"], {"unit_amount_cents": 1700})
    shop.order = placed.json()["data"]
    return shop


def included(copy: dict[str, Any], name: str) -> dict[str, Any] | None:
    linkage = copy["relationships"][name]["data"]
    if linkage is None:
        return None
    return next(i for i in copy["included"] if i["id"] == linkage["id"])


def lines_of(api: Api, order_id: str) -> list[tuple[str, str | None, int, int]]:
    document = api.get(f"/api/orders/{order_id}/line_items", sort="created_at").json()
    return sorted(
        (
            line["attributes"]["item_type"],
            line["attributes"]["sku_code"],
            line["attributes"]["quantity"],
            line["attributes"]["unit_amount_cents"],
        )
        for line in document["data"]
    )


def address_fields(api: Api, order_id: str, name: str) -> tuple[str, dict[str, Any]]:
    address = api.get(f"/api/orders/{order_id}/{name}").json()["data"]
    fields = {k: v for k, v in address["attributes"].items() if not k.endswith("_at")}
    return address["id"], fields


def wallet_entry_of(api: Api, order_id: str) -> str | None:
    data = api.get(f"/api/orders/{order_id}/customer_payment_source").json()["data"]
    return None if data is None else data["id"]


def stock(api: Api, sku_id: str) -> int:
    return int(api.retrieve("skus", sku_id)["attributes"]["stock_quantity"])


def test_copy_with_each_option_and_read_the_target_orders(api, shop, celery_worker):
    source_id = shop.order["id"]
    expected_lines = [
        ("adjustments", None, 1, -500),
        ("skus", "CAP", 1, 900),
        ("skus", "TEE", 2, 1500),  # frozen: as it was sold, not at the catalog's 17.00
    ]
    tee_stock = stock(api, shop.sku["id"])

    # Defaults: build the target from the wallet, leave it to be placed by hand.
    plain = copy_order(api, shop)
    target = included(plain, "target_order")
    assert plain["attributes"]["status"] == "completed"
    assert (plain["attributes"]["errors_log"], plain["attributes"]["errors_count"]) == ({}, 0)
    assert plain["attributes"]["started_at"] <= plain["attributes"]["completed_at"]
    assert target is not None
    assert target["id"] != source_id
    assert target["attributes"]["status"] == "pending"
    assert target["attributes"]["payment_status"] == "unpaid"
    assert lines_of(api, target["id"]) == expected_lines  # shipping is not copied
    assert target["attributes"]["subtotal_amount_cents"] == 3900
    assert target["attributes"]["adjustment_amount_cents"] == -500
    assert target["attributes"]["total_amount_cents"] == 3400
    assert target["attributes"]["frozen"] is True
    assert target["attributes"]["currency_code"] == "USD"
    assert target["attributes"]["customer_email"] == "tee@example.com"
    assert wallet_entry_of(api, target["id"]) == shop.entry["id"]
    assert target["attributes"]["payment_method"] == "credit_card"
    customer = api.get(f"/api/orders/{target['id']}/customer").json()["data"]
    assert customer["id"] == shop.customer["id"]
    for name in ("billing_address", "shipping_address"):
        copied_id, copied = address_fields(api, target["id"], name)
        original_id, original = address_fields(api, source_id, name)
        assert copied_id != original_id  # cloned, so editing one leaves the other
        assert copied == original
    assert stock(api, shop.sku["id"]) == tee_stock

    # place_target_order: authorized and stock taken.
    placed = included(copy_order(api, shop, place_target_order=True), "target_order")
    assert placed is not None
    assert placed["attributes"]["status"] == "placed"
    assert placed["attributes"]["payment_status"] == "authorized"
    assert placed["attributes"]["placed_at"] is not None
    assert lines_of(api, placed["id"]) == expected_lines
    assert stock(api, shop.sku["id"]) == tee_stock - 2

    # reuse_wallet false: no payment source on the target.
    walletless = included(copy_order(api, shop, reuse_wallet=False), "target_order")
    assert walletless is not None
    assert wallet_entry_of(api, walletless["id"]) is None
    assert walletless["attributes"]["payment_method"] is None

    # reuse_wallet false and place: it cannot be paid, so the copy fails...
    unpaid = copy_order(api, shop, reuse_wallet=False, place_target_order=True)
    assert unpaid["attributes"]["status"] == "failed"
    assert unpaid["attributes"]["errors_count"] >= 1
    assert "payment_source is missing" in str(unpaid["attributes"]["errors_log"])
    assert unpaid["attributes"]["failed_at"] is not None
    # ... unless skip_errors: completed, errors kept, target left pending.
    skipped = copy_order(api, shop, reuse_wallet=False, place_target_order=True, skip_errors=True)
    assert skipped["attributes"]["status"] == "completed"
    assert skipped["attributes"]["errors_count"] == unpaid["attributes"]["errors_count"]
    assert included(skipped, "target_order")["attributes"]["status"] == "pending"

    # cancel_source_order (with place): the source is cancelled and its payment voided.
    swapped = copy_order(api, shop, place_target_order=True, cancel_source_order=True)
    assert swapped["attributes"]["status"] == "completed"
    assert included(swapped, "target_order")["attributes"]["status"] == "placed"
    source = included(swapped, "source_order")
    assert source["attributes"]["status"] == "cancelled"
    assert source["attributes"]["payment_status"] == "voided"
    assert stock(api, shop.sku["id"]) == tee_stock - 2 - 2 + 2  # the source's 2 came back

    listed = api.get(f"/api/orders/{source_id}/order_copies").json()
    assert listed["meta"]["record_count"] == 6


def test_a_copy_that_failed_is_fixed_over_the_api_and_retried(api, shop, celery_worker):
    api.update(
        "skus", api.ids("/api/skus", **{"filter[q][code_eq]": "CAP"})[0], {"discontinued": True}
    )

    skipped = copy_order(api, shop, skip_errors=True)
    failed = copy_order(api, shop, place_target_order=True)

    assert skipped["attributes"]["status"] == "completed"
    assert skipped["attributes"]["errors_log"] == {"line_items": ["SKU CAP is discontinued"]}
    skipped_target = included(skipped, "target_order")
    assert [line[1] for line in lines_of(api, skipped_target["id"])] == [None, "TEE"]
    assert failed["attributes"]["status"] == "failed"
    assert failed["attributes"]["errors_log"]["line_items"] == ["SKU CAP is discontinued"]
    assert failed["attributes"]["errors_count"] == 1
    kept = included(failed, "target_order")  # a failed copy keeps its target, pending
    assert kept is not None
    assert kept["attributes"]["status"] == "pending"

    cap = api.ids("/api/skus", **{"filter[q][code_eq]": "CAP"})[0]
    assert api.update("skus", cap, {"discontinued": False}).status_code == 200
    retried = api.update("order_copies", failed["id"], {"_retry": True})
    assert retried.status_code == 200
    # The doorbell rings at commit: a worker may take the copy before the answer is read.
    assert retried.json()["data"]["attributes"]["status"] in ("pending", "in_progress", "completed")

    done = wait_until_finished(api, failed["id"])
    assert done["attributes"]["status"] == "completed"
    assert (done["attributes"]["errors_log"], done["attributes"]["errors_count"]) == ({}, 0)
    target = included(done, "target_order")
    assert target["attributes"]["status"] == "placed"
    assert [line[1] for line in lines_of(api, target["id"])] == [None, "CAP", "TEE"]
    assert target["id"] == kept["id"]  # a retry never builds a second target
