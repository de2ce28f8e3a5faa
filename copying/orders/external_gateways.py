"""External payment gateways as records: their fields' rules, the operator's switch
(reset an open circuit), and which gateway a wallet entry may name.

A gateway is named by the id of its row (``external_gateways.id``) wherever the built-in
test gateway is named ``"test"``: wallet entries, orders and payments. Its URLs obey the
webhooks' rules (``copying.webhooks.addresses``): http(s) without credentials, https in
live mode, and public addresses only, unless ``webhooks_allow_private`` is on, which a
live gateway ignores: live money never goes to a private address. No HTTP here: the calls
are ``worker.external_gateways``'.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from config import get_settings
from copying import circuits
from copying.errors import CopyInputError, InUseError
from copying.orders.gateways import TestGateway
from copying.webhooks import signing
from copying.webhooks.addresses import problem_with_callback_url
from models import (
    CircuitState,
    CustomerPaymentSource,
    ExternalGateway,
    Mode,
    Order,
    PaymentAuthorization,
    new_public_id,
)
from models.external_gateways import (
    TIMEOUT_SECONDS_DEFAULT,
    TIMEOUT_SECONDS_MAX,
    TIMEOUT_SECONDS_MIN,
)

#: The URL of each transaction type, by field name.
URLS = ("authorize_url", "capture_url", "void_url", "refund_url", "token_url")
#: What ``update`` may change; the rest is the system's.
EDITABLE = frozenset(
    {"name", *URLS, "timeout_seconds", "reference", "reference_origin", "metadata"}
)


def allows_private(mode: Mode) -> bool:
    """Whether a gateway of ``mode`` may call loopback and private addresses: in test mode
    when ``webhooks_allow_private`` is on (tests, the embedded default), never live."""
    return mode == Mode.TEST and get_settings().webhooks_allow_private


def check_fields(values: Mapping[str, Any], mode: Mode) -> dict[str, Any]:
    """``values`` (field → value) as stored, after the rules: each URL one a gateway of
    ``mode`` may call (it asks DNS: better outside a transaction that holds locks), the
    timeout within its bounds. Raises CopyInputError naming the field."""
    checked = dict(values)
    for field in URLS:
        url = checked.get(field)
        if url is not None:
            if not isinstance(url, str):
                raise CopyInputError(field, "must be a URL")
            problem = problem_with_callback_url(
                url, live=mode == Mode.LIVE, allow_private=allows_private(mode)
            )
            if problem is not None:
                raise CopyInputError(field, problem.replace("callback URL", field))
    if "timeout_seconds" in checked:
        timeout = checked["timeout_seconds"]
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int)
            or not TIMEOUT_SECONDS_MIN <= timeout <= TIMEOUT_SECONDS_MAX
        ):
            raise CopyInputError(
                "timeout_seconds",
                f"must be a whole number of seconds from {TIMEOUT_SECONDS_MIN}"
                f" to {TIMEOUT_SECONDS_MAX}",
            )
    if "metadata" in checked:
        if not isinstance(checked["metadata"], Mapping):
            raise CopyInputError("metadata", "must be an object")
        checked["metadata_"] = dict(checked.pop("metadata") or {})
    return checked


def create(
    session: Session, *, mode: Mode, name: str, now: datetime, **fields: Any
) -> ExternalGateway:
    """A gateway of ``mode`` with a new shared secret and its circuit closed; added to the
    session. Raises CopyInputError naming the field (before the session is touched).
    Does not commit."""
    unknown = set(fields) - EDITABLE
    if unknown:
        raise ValueError(f"not a field of an external gateway: {', '.join(sorted(unknown))}")
    values = check_fields(fields, mode)
    gateway = ExternalGateway(
        id=new_public_id(),
        mode=mode,
        name=name,
        shared_secret=signing.new_secret(),
        circuit_state=CircuitState.CLOSED,
        circuit_failure_count=0,
        timeout_seconds=TIMEOUT_SECONDS_DEFAULT,
        metadata_={},
        created_at=now,
        updated_at=now,
    )
    for field, value in values.items():
        setattr(gateway, field, value)
    session.add(gateway)
    return gateway


def update(gateway: ExternalGateway, changes: Mapping[str, Any]) -> None:
    """Set ``changes`` (fields of :data:`EDITABLE`) after the checks ``create`` makes.
    Raises CopyInputError with the gateway unchanged. Does not commit."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    for field, value in check_fields(changes, gateway.mode).items():
        setattr(gateway, field, value)


def reset_circuit(gateway: ExternalGateway) -> None:
    """Close the gateway's circuit: its calls are made again. Does not commit."""
    circuits.close(gateway)


def check_gateway(session: Session, name: object, mode: Mode, field: str = "gateway") -> str:
    """``name`` when a wallet entry of ``mode`` may name it: the built-in test gateway
    (``"test"``, in either mode), or an external gateway of ``mode`` by its id. Raises
    CopyInputError (``field``) otherwise."""
    if name == TestGateway.name:
        return name
    if not isinstance(name, str):
        raise CopyInputError(field, "must be a gateway's name")
    found = session.scalar(
        select(exists().where(ExternalGateway.id == name, ExternalGateway.mode == mode))
    )
    if not found:
        raise CopyInputError(
            field,
            f"{name!r} is neither {TestGateway.name!r} nor the id of an external gateway"
            f" of {mode} mode",
        )
    return name


def check_deletable(session: Session, gateway: ExternalGateway) -> None:
    """Raise InUseError while a wallet entry, an order or a payment names the gateway: it
    would be charged, captured, refunded or voided through nothing. Change its URLs
    instead."""
    named = session.scalar(
        select(
            or_(
                exists().where(CustomerPaymentSource.gateway == gateway.id),
                exists().where(Order.payment_gateway == gateway.id),
                exists().where(PaymentAuthorization.gateway == gateway.id),
            )
        )
    )
    if named:
        raise InUseError(
            f"external gateway {gateway.id} is named by wallet entries, orders or payments;"
            " it stays (change its URLs instead)"
        )
