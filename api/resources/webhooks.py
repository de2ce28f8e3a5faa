"""``webhooks``: a callback URL that hears of every event of one topic, in one mode.

The rules (topics, callback URLs, included relationships, the circuit) live in
``copying.webhooks.webhooks``; their CopyInputError becomes a 422 pointing at the field.

``shared_secret`` is generated at create and shown in every answer about the webhook.
Webhooks are scoped by mode like every record, but there is no per-key ownership in the
data model: every API key of the webhook's mode reads its secret, and no key of the
other mode sees the webhook at all.
"""

from __future__ import annotations

from typing import Any

from api import lookups
from api.resources.common import (
    TIMESTAMPS,
    changed_values,
    plain_delete,
    reference_attributes,
    signed_circuit_attributes,
)
from api.spec import Attribute, Context, Relationship, Resource, Trigger
from copying.webhooks import webhooks
from copying.webhooks.topics import TOPICS
from models import Webhook, utcnow

TYPE = "webhooks"


def create_webhook(
    ctx: Context, attributes: dict[str, Any], related: dict[str, str | None]
) -> Webhook:
    return webhooks.create(
        ctx.session,
        mode=ctx.mode,
        topic=attributes["topic"],
        callback_url=attributes["callback_url"],
        name=attributes.get("name"),
        include_resources=attributes.get("include_resources", ()),
        reference=attributes.get("reference"),
        reference_origin=attributes.get("reference_origin"),
        metadata=attributes.get("metadata"),
        now=utcnow(),
    )


def _check_updated(ctx: Context, webhook: Webhook, changed: set[str]) -> None:
    """The generic update set the attributes already: the domain checks (and stores)
    them as its own update would."""
    webhooks.update(webhook, changed_values(ctx, webhook, changed))


def _load(ctx: Context, webhook_id: str) -> Webhook:
    webhook: Webhook = lookups.load(
        ctx.session, Webhook, TYPE, webhook_id, ctx.mode, lock=True, keeping_key=True
    )
    return webhook


def reset_circuit(ctx: Context, webhook_id: str, _: Any) -> None:
    webhooks.reset_circuit(ctx.session, _load(ctx, webhook_id), utcnow())


def disable(ctx: Context, webhook_id: str, _: Any) -> None:
    webhooks.disable(_load(ctx, webhook_id), utcnow())


def enable(ctx: Context, webhook_id: str, _: Any) -> None:
    webhooks.enable(_load(ctx, webhook_id))


def _includable() -> str:
    return "; ".join(f"{type_}: {', '.join(paths)}" for type_, paths in webhooks.INCLUDABLE.items())


WEBHOOKS = Resource(
    type=TYPE,
    model=Webhook,
    description="Callback URLs that receive every event of a topic, signed and retried.",
    attributes=(
        Attribute("name", "string", writable="always", max_length=255, filterable=True),
        Attribute(
            "topic",
            "string",
            writable="always",
            required=True,
            nullable=False,
            filterable=True,
            sortable=True,
            choices=tuple(TOPICS),
        ),
        Attribute(
            "callback_url",
            "string",
            writable="always",
            required=True,
            nullable=False,
            max_length=2048,
            filterable=True,
            description="Where events are POSTed: https, at a public address, in live mode.",
        ),
        Attribute(
            "include_resources",
            "array",
            writable="always",
            nullable=False,
            description=f"Relationships the payload includes, by the topic's type: "
            f"{_includable()}.",
        ),
        *signed_circuit_attributes("deliveries", "webhook"),
        Attribute(
            "disabled_at",
            "datetime",
            filterable=True,
            sortable=True,
            description="Set by _disable: no event is written or sent for it until _enable.",
        ),
        *reference_attributes(),
        *TIMESTAMPS,
    ),
    relationships=(Relationship("last_event_callbacks", "event_callbacks", inverse="webhook_id"),),
    triggers=(
        Trigger(
            "_reset_circuit",
            "boolean",
            reset_circuit,
            "true: close the circuit; the events that waited are due at once",
        ),
        Trigger("_disable", "boolean", disable, "true: write and send no event for it"),
        Trigger("_enable", "boolean", enable, "true: write and send its events again"),
    ),
    create=create_webhook,
    check_updated=_check_updated,
    delete=plain_delete,
)
