"""``customers`` and their wallets, ``customer_payment_sources``."""

from __future__ import annotations

from api.resources.common import TIMESTAMPS, plain_create, plain_delete
from api.spec import Attribute, Relationship, Resource
from models import Customer, CustomerPaymentSource

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
        Attribute("metadata", "object", column="metadata_", writable="always", nullable=False),
        *TIMESTAMPS,
    ),
    relationships=(
        Relationship("customer_payment_sources", "customer_payment_sources", inverse="customer_id"),
        Relationship("orders", "orders", inverse="customer_id"),
    ),
    create=plain_create(Customer, defaults={"metadata_": {}}),
    delete=plain_delete,
)

CUSTOMER_PAYMENT_SOURCES = Resource(
    type="customer_payment_sources",
    model=CustomerPaymentSource,
    attributes=(
        Attribute(
            "payment_source_token",
            "string",
            writable="always",
            required=True,
            nullable=False,
            max_length=255,
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
        Attribute("gateway", "string", writable="create", nullable=False, max_length=32),
        Attribute("expires_on", "date", writable="always", filterable=True),
        Attribute("disabled", "boolean", writable="always", nullable=False, filterable=True),
        *TIMESTAMPS,
    ),
    relationships=(
        Relationship(
            "customer", "customers", column="customer_id", writable="create", required=True
        ),
    ),
    create=plain_create(CustomerPaymentSource, {"customer": "customer_id"}),
    delete=plain_delete,
    extra_filters={"customer_id": "string"},
)
