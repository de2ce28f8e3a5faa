"""``authorizations``, ``captures``, ``voids`` and ``refunds``: an order's payment
transactions, as its gateway answered them (Commerce Layer's transaction resources).

Read-only: placing writes the authorizations; the order's ``_capture``, ``_refund``,
``_refund_amount_cents``, ``_void`` and ``_cancel`` write the others (one table,
``payment_transactions``, a scope per kind).
"""

from __future__ import annotations

from api.resources.common import CURRENCY, TIMESTAMPS, choices
from api.spec import Attribute, Relationship, Resource, Scope
from models import (
    AuthorizationStatus,
    PaymentAuthorization,
    PaymentTransaction,
    TransactionKind,
    TransactionStatus,
)

#: What every transaction shows, whatever its kind.
_MONEY = (
    Attribute("amount_cents", "integer", nullable=False, filterable=True, sortable=True),
    Attribute("currency_code", "string", nullable=False, pattern=CURRENCY, filterable=True),
    Attribute(
        "gateway",
        "string",
        nullable=False,
        filterable=True,
        description="The gateway asked: test, or an external gateway's id.",
    ),
    Attribute(
        "token",
        "string",
        column="gateway_reference",
        filterable=True,
        description="The gateway's transaction token (null until it answered, or declined).",
    ),
    Attribute(
        "message",
        "string",
        description="The gateway's message: why it declined, or what it did.",
    ),
    Attribute(
        "idempotency_key",
        "string",
        nullable=False,
        filterable=True,
        description="The key the gateway was asked under: the same key gets the first answer.",
    ),
)

AUTHORIZATIONS = Resource(
    type="authorizations",
    model=PaymentAuthorization,
    description="Holds asked of a gateway when an order was placed, newest first.",
    attributes=(
        *_MONEY,
        Attribute(
            "status",
            "string",
            nullable=False,
            filterable=True,
            choices=choices(AuthorizationStatus),
            description="requested until the gateway answers; voiding while a void is under "
            "way; captured once a capture succeeded.",
        ),
        Attribute(
            "succeeded",
            "boolean",
            nullable=False,
            read=lambda row: (
                row.status
                in (
                    AuthorizationStatus.AUTHORIZED,
                    AuthorizationStatus.CAPTURED,
                    AuthorizationStatus.VOIDING,
                    AuthorizationStatus.VOIDED,
                )
            ),
            description="Whether the gateway authorized it.",
        ),
        Attribute("voided_at", "datetime", filterable=True),
        *TIMESTAMPS,
    ),
    relationships=(
        Relationship("order", "orders", column="order_id"),
        Relationship("captures", "captures", inverse="authorization_id"),
        Relationship("voids", "voids", inverse="authorization_id"),
    ),
    updatable=False,
    extra_filters={"order_id": "string"},
)


def _transactions(
    kind: TransactionKind, description: str, *relationships: Relationship
) -> Resource:
    return Resource(
        type=f"{kind}s",
        model=PaymentTransaction,
        description=description,
        attributes=(
            *_MONEY,
            Attribute(
                "status",
                "string",
                nullable=False,
                filterable=True,
                choices=choices(TransactionStatus),
                description="requested until the gateway answers (asking for the same again "
                "replays its key), then succeeded or failed (declined).",
            ),
            Attribute(
                "succeeded",
                "boolean",
                nullable=False,
                read=lambda row: row.status == TransactionStatus.SUCCEEDED,
            ),
            Attribute("settled_at", "datetime", filterable=True, sortable=True),
            *TIMESTAMPS,
        ),
        relationships=(
            Relationship("order", "orders", column="order_id"),
            Relationship("reference_authorization", "authorizations", column="authorization_id"),
            *relationships,
        ),
        updatable=False,
        extra_filters={"order_id": "string", "authorization_id": "string"},
        scope=Scope(
            where=lambda: PaymentTransaction.kind == kind,
            holds=lambda row: row.kind == kind,
        ),
    )


CAPTURES = _transactions(
    TransactionKind.CAPTURE,
    "Captures of authorizations (an order's _capture), newest first.",
    Relationship("refunds", "refunds", inverse="capture_id"),
)
VOIDS = _transactions(
    TransactionKind.VOID,
    "Voids of uncaptured authorizations (an order's _void or _cancel), newest first.",
)
REFUNDS = _transactions(
    TransactionKind.REFUND,
    "Refunds of captures (an order's _refund, _refund_amount_cents or _cancel), newest first.",
    Relationship("reference_capture", "captures", column="capture_id"),
)
