"""Attributes every resource shares, and the generic create/delete hooks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from api import lookups
from api.spec import Attribute, Context
from copying.circuits import CIRCUIT_AFTER
from models import Base, CircuitState, new_public_id

CURRENCY = "^[A-Z]{3}$"  # ISO 4217
COUNTRY = "^[A-Z]{2}$"  # ISO 3166-1 alpha-2

TIMESTAMPS = (
    Attribute("created_at", "datetime", nullable=False, filterable=True, sortable=True),
    Attribute("updated_at", "datetime", nullable=False, filterable=True, sortable=True),
)
#: A record's currency, set when it is made: orders' and the catalog's.
CURRENCY_CODE = Attribute(
    "currency_code",
    "string",
    writable="create",
    required=True,
    nullable=False,
    pattern=CURRENCY,
    filterable=True,
    description="ISO 4217, e.g. USD",
)
METADATA = Attribute(
    "metadata",
    "object",
    column="metadata_",
    writable="always",
    nullable=False,
    description="Key-value pairs of your own.",
)


def choices(enum_type: Any) -> tuple[str, ...]:
    """The values of a status enum, as its attribute lists them."""
    return tuple(member.value for member in enum_type)


def reference_attributes() -> tuple[Attribute, ...]:
    return (
        Attribute("reference", "string", writable="always", max_length=255, filterable=True),
        Attribute("reference_origin", "string", writable="always", max_length=255, filterable=True),
        METADATA,
    )


def signed_circuit_attributes(calls: str, owner: str) -> tuple[Attribute, ...]:
    """``circuit_state``, ``circuit_failure_count`` and ``shared_secret`` of a resource
    that calls out (webhooks: ``"deliveries"``; external gateways: ``"calls"``), read-only:
    the breaker is ``copying.circuits``', the secret generated at create."""
    return (
        Attribute(
            "circuit_state",
            "string",
            nullable=False,
            filterable=True,
            choices=choices(CircuitState),
            description=f"open after {CIRCUIT_AFTER} failed {calls} in a row: none is made"
            " until _reset_circuit.",
        ),
        Attribute(
            "circuit_failure_count",
            "integer",
            nullable=False,
            filterable=True,
            sortable=True,
            description=f"Failed {calls} in a row (no answer in time, a 5xx, ...).",
        ),
        Attribute(
            "shared_secret",
            "string",
            nullable=False,
            description="Generated; the key of each request's X-CommerceLayer-Signature. "
            f"Every key of the {owner}'s mode reads it.",
        ),
    )


def plain_create(
    model: type[Base],
    defaults: Mapping[str, Any] | None = None,
    check: Callable[[Context, dict[str, Any]], None] | None = None,
) -> Callable[[Context, dict[str, Any], dict[str, str | None]], Base]:
    """A create hook that sets the attributes and to-one relationships of a new row.

    ``check`` sees the column values first and raises ApiError to refuse them.
    """

    def create(ctx: Context, attributes: dict[str, Any], related: dict[str, str | None]) -> Base:
        values: dict[str, Any] = dict(defaults or {})
        for name, value in attributes.items():
            attribute = ctx.resource.attribute(name)
            values[attribute.attr if attribute else name] = value
        if check is not None:
            check(ctx, values)
        for name, related_id in related.items():
            relationship = ctx.resource.relationship(name)
            if related_id is None or relationship is None or relationship.column is None:
                continue
            target = ctx.registry[relationship.type]
            lookups.load_related(ctx.session, target.model, target.type, related_id, ctx.mode, name)
            values[relationship.column] = related_id
        row = model(id=new_public_id(), mode=ctx.mode, **values)
        ctx.session.add(row)
        return row

    return create


def changed_values(ctx: Context, row: Any, changed: set[str]) -> dict[str, Any]:
    """The values the generic update set on ``row``, by attribute name: what a
    ``check_updated`` hands the domain's own update, which checks them again."""
    values = {}
    for name in changed:
        attribute = ctx.resource.attribute(name)
        assert attribute is not None  # only attributes are writable
        values[name] = getattr(row, attribute.attr)
    return values


def plain_delete(ctx: Context, row: Any) -> None:
    ctx.session.delete(row)
