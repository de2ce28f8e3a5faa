"""A shop built over the API, as a web app would: catalog, customer, wallet, addresses
and a source order."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from copying.runs import Outcome
from tests.runs import execute_one

#: How the API writes a timestamp.
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass
class Shop:
    sku: dict[str, Any]
    customer: dict[str, Any]
    entry: dict[str, Any] | None
    billing: dict[str, Any]
    shipping: dict[str, Any]
    order: dict[str, Any]


def build_shop(
    api: Any,
    *,
    code: str = "TEE",
    price: int = 1500,
    stock: int = 10,
    quantity: int = 2,
    token: str = "tok_visa",
    place: bool = True,
    frequency: str | None = None,
    gateway: str = "test",
    wallet: bool = True,
) -> Shop:
    """A customer's order of ``quantity`` of one SKU, paid from their wallet; placed
    (authorized, stock taken) unless ``place`` is false; its line carries ``frequency``
    (a subscription at that frequency renews it as an item) when given. The wallet entry
    names ``gateway`` (the built-in test gateway, or an external gateway's id); with
    ``wallet`` false the customer has none (a free order is placed without one)."""
    sku = api.create(
        "skus",
        {
            "code": code,
            "name": f"{code} tee",
            "unit_amount_cents": price,
            "currency_code": "USD",
            "stock_quantity": stock,
        },
    )
    customer = api.create("customers", {"email": f"{code.lower()}@example.com"})
    entry = (
        None
        if not wallet
        else api.create(
            "customer_payment_sources",
            {
                "payment_source_token": token,
                "name": "Visa 4242",
                "expires_on": "2099-12-31",
                "gateway": gateway,
            },
            {"customer": ("customers", customer["id"])},
        )
    )
    billing = api.create(
        "addresses",
        {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "line_1": "Via Roma 1",
            "city": "Florence",
            "zip_code": "50123",
            "country_code": "IT",
        },
    )
    shipping = api.create(
        "addresses", {"line_1": "Corso Como 2", "city": "Milan", "country_code": "IT"}
    )
    order = api.create(
        "orders",
        {"currency_code": "USD", "customer_email": customer["attributes"]["email"]},
        {
            "customer": ("customers", customer["id"]),
            "billing_address": ("addresses", billing["id"]),
            "shipping_address": ("addresses", shipping["id"]),
        },
    )
    line: dict[str, Any] = {"sku_code": code, "quantity": quantity}
    if frequency is not None:
        line["frequency"] = frequency
    api.create("line_items", line, {"order": ("orders", order["id"])})
    attributes: dict[str, Any] = (
        {} if entry is None else {"_customer_payment_source_id": entry["id"]}
    )
    if place:
        attributes["_place"] = True
    response = api.update("orders", order["id"], attributes)
    assert response.status_code == 200, response.json()
    return Shop(sku, customer, entry, billing, shipping, response.json()["data"])


def create_copy(api: Any, order_id: str, **attributes: Any) -> dict[str, Any]:
    """POST a copy of ``order_id``; its resource object."""
    result: dict[str, Any] = api.create(
        "order_copies", attributes, {"source_order": ("orders", order_id)}
    )
    return result


def run(committed: Any, gateways: Any, copy_id: str) -> Outcome:
    """Execute the copy here, as a worker would."""
    return execute_one(committed, copy_id, gateways=gateways)
