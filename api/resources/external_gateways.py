"""``external_gateways``: a merchant's endpoints that take payments from their payment
service, spoken to with Commerce Layer's protocol (docs/external-gateways.md).

The rules (URLs as webhooks', the timeout's bounds, who may name one) live in
``copying.orders.external_gateways``; their CopyInputError becomes a 422 pointing at the
field. ``shared_secret`` is generated at create and, like a webhook's, read by every key
of the gateway's mode; no key of the other mode sees the gateway at all.
"""

from __future__ import annotations

from typing import Any

from api import lookups
from api.resources.common import (
    TIMESTAMPS,
    changed_values,
    reference_attributes,
    signed_circuit_attributes,
)
from api.spec import Attribute, Context, Resource, Trigger
from copying.orders import external_gateways
from models import ExternalGateway, utcnow
from models.external_gateways import (
    TIMEOUT_SECONDS_DEFAULT,
    TIMEOUT_SECONDS_MAX,
    TIMEOUT_SECONDS_MIN,
)

TYPE = "external_gateways"
_URLS = {
    "authorize_url": "authorizations: placing an order",
    "capture_url": "captures of an authorization",
    "void_url": "voids of an authorization not captured",
    "refund_url": "refunds of a capture, whole or in part",
    "token_url": "customer payment tokens: stored, never called by ordercopy",
}


def _create(
    ctx: Context, attributes: dict[str, Any], related: dict[str, str | None]
) -> ExternalGateway:
    fields = dict(attributes)
    return external_gateways.create(
        ctx.session, mode=ctx.mode, name=fields.pop("name"), now=utcnow(), **fields
    )


def _check_updated(ctx: Context, gateway: ExternalGateway, changed: set[str]) -> None:
    """The generic update set the attributes already: the domain checks them as its own
    update would (and stores them)."""
    external_gateways.update(gateway, changed_values(ctx, gateway, changed))


def _reset_circuit(ctx: Context, gateway_id: str, _: Any) -> None:
    gateway: ExternalGateway = lookups.load(
        ctx.session, ExternalGateway, TYPE, gateway_id, ctx.mode, lock=True, keeping_key=True
    )
    external_gateways.reset_circuit(gateway)


def _delete(ctx: Context, gateway: ExternalGateway) -> None:
    external_gateways.check_deletable(ctx.session, gateway)
    ctx.session.delete(gateway)


EXTERNAL_GATEWAYS = Resource(
    type=TYPE,
    model=ExternalGateway,
    description="A merchant's payment endpoints (Commerce Layer's external payment gateways):"
    " wallet entries name one by its id as their gateway.",
    attributes=(
        Attribute(
            "name",
            "string",
            writable="always",
            required=True,
            nullable=False,
            max_length=255,
            filterable=True,
            sortable=True,
        ),
        *(
            Attribute(
                field,
                "string",
                writable="always",
                max_length=2048,
                filterable=True,
                description=f"Where {what} are POSTed: https, at a public address, in live mode.",
            )
            for field, what in _URLS.items()
        ),
        Attribute(
            "timeout_seconds",
            "integer",
            writable="always",
            nullable=False,
            minimum=TIMEOUT_SECONDS_MIN,
            description=f"One request's time limit, {TIMEOUT_SECONDS_MIN} to"
            f" {TIMEOUT_SECONDS_MAX} s (default {TIMEOUT_SECONDS_DEFAULT}): past it the payment"
            " is asked again later under the same Idempotency-Key.",
        ),
        *signed_circuit_attributes("calls", "gateway"),
        *reference_attributes(),
        *TIMESTAMPS,
    ),
    triggers=(Trigger("_reset_circuit", "boolean", _reset_circuit, "true: close the circuit"),),
    create=_create,
    check_updated=_check_updated,
    delete=_delete,
)
