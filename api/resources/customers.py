"""``customers`` and their wallets, ``customer_payment_sources``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select

from api.errors import ApiError
from api.resources.common import METADATA, TIMESTAMPS, plain_create, plain_delete
from api.spec import Attribute, Context, Relationship, Resource
from copying.orders import external_gateways, wallet
from copying.orders.gateways import TestGateway
from models import Customer, CustomerPaymentSource, Order

#: A token shorter than this is shown without its end: the end would be most of it.
SHOWN_FROM_LENGTH = 12


def masked(token: str) -> str:
    """``••••`` and, for a token of at least 12 characters, its last 4."""
    return "••••" + (token[-4:] if len(token) >= SHOWN_FROM_LENGTH else "")


def _delete_customer(ctx: Context, customer: Customer) -> None:
    """Delete the customer and their wallet; not while orders name them."""
    if ctx.session.scalar(select(exists().where(Order.customer_id == customer.id))):
        raise ApiError(409, f"customer {customer.id} has orders; a customer with orders stays")
    ctx.session.delete(customer)


CUSTOMERS = Resource(
    type="customers",
    model=Customer,
    attributes=(
        Attribute(
            "email",
            "string",
            writable="always",
            required=True,
            nullable=False,
            max_length=255,
            filterable=True,
            sortable=True,
        ),
        METADATA,
        *TIMESTAMPS,
    ),
    relationships=(
        Relationship("customer_payment_sources", "customer_payment_sources", inverse="customer_id"),
        Relationship("orders", "orders", inverse="customer_id"),
    ),
    create=plain_create(Customer, defaults={"metadata_": {}}),
    delete=_delete_customer,
)


def _delete_payment_source(ctx: Context, entry: CustomerPaymentSource) -> None:
    """Refused (409) while an order not yet placed or a live subscription is charged to it."""
    wallet.check_deletable(ctx.session, entry.id)
    plain_delete(ctx, entry)


def _check_new_payment_source(ctx: Context, values: dict[str, Any]) -> None:
    """Its gateway is ``test`` or an external gateway of the key's mode (422 otherwise)."""
    values["gateway"] = external_gateways.check_gateway(
        ctx.session, values.get("gateway", TestGateway.name), ctx.mode
    )


CUSTOMER_PAYMENT_SOURCES = Resource(
    type="customer_payment_sources",
    model=CustomerPaymentSource,
    description="A customer's wallet: payment sources saved at a gateway, reused by copies.",
    attributes=(
        Attribute(
            "payment_source_token",
            "string",
            writable="always",
            required=True,
            nullable=False,
            max_length=255,
            description="The gateway's token (the test gateway: tok_visa, tok_declined, ...)."
            " Write-only: responses show it masked, at most its last 4 characters.",
            read=lambda entry: masked(entry.payment_source_token),
        ),
        Attribute("name", "string", writable="always", nullable=False, max_length=255),
        Attribute(
            "payment_method",
            "string",
            writable="create",
            nullable=False,
            max_length=32,
            filterable=True,
        ),
        Attribute(
            "gateway",
            "string",
            writable="create",
            nullable=False,
            max_length=32,
            filterable=True,
            description="test (the built-in test gateway, the default) or the id of an"
            " external gateway of the same mode.",
        ),
        Attribute("expires_on", "date", writable="always", filterable=True),
        Attribute("disabled", "boolean", writable="always", nullable=False, filterable=True),
        *TIMESTAMPS,
    ),
    relationships=(
        Relationship(
            "customer", "customers", column="customer_id", writable="create", required=True
        ),
    ),
    create=plain_create(CustomerPaymentSource, check=_check_new_payment_source),
    delete=_delete_payment_source,
    extra_filters={"customer_id": "string"},
)
