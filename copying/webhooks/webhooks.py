"""Webhooks themselves: who listens to which topic, at which URL, and the switches an
operator turns (disable, enable, reset an open circuit).

Every rule a webhook's fields obey lives here: the topic is one that fires
(``topics``), the callback URL may be called from this mode (``addresses``), and
``include_resources`` names relationships of the topic's resource. The API only maps
the CopyInputError these raise to a 422.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from config import get_settings
from copying import circuits
from copying.errors import CopyInputError
from copying.webhooks import signing
from copying.webhooks.addresses import problem_with_callback_url
from copying.webhooks.topics import TOPICS, check_topic
from models import CircuitState, EventStatus, Mode, Webhook, WebhookEvent, new_public_id

#: The relationships a payload may include, by the type of the topic's resource: one
#: level deep, as the API's resource of that type names them.
INCLUDABLE: dict[str, tuple[str, ...]] = {
    "order_copies": ("source_order", "target_order", "order_subscription", "events"),
    "recurring_order_copies": ("source_order", "target_order", "order_subscription", "events"),
    "order_subscriptions": (
        "source_order",
        "customer",
        "customer_payment_source",
        "order_copies",
        "recurring_order_copies",
    ),
    "orders": (
        "customer",
        "billing_address",
        "shipping_address",
        "customer_payment_source",
        "line_items",
        "order_copies",
        "origin_order_copies",
    ),
}

#: What ``update`` may change, by field name; the rest is the system's or fixed at create.
EDITABLE = frozenset(
    {
        "name",
        "topic",
        "callback_url",
        "include_resources",
        "reference",
        "reference_origin",
        "metadata",
    }
)


def check_callback_url(url: object, mode: Mode) -> str:
    """The URL, when a webhook of ``mode`` may call it; else CopyInputError saying why.

    Live mode asks for https; either mode, unless the ``webhooks_allow_private``
    setting is on, a host whose addresses are all public, which asks DNS here (bounded
    by the resolver's timeout): better outside a transaction that holds locks.
    """
    if not isinstance(url, str):
        raise CopyInputError("callback_url", "must be a URL")
    problem = problem_with_callback_url(
        url, live=mode == Mode.LIVE, allow_private=get_settings().webhooks_allow_private
    )
    if problem is not None:
        raise CopyInputError("callback_url", problem)
    return url


def check_include_resources(topic: str, paths: object) -> list[str]:
    """``paths`` as stored: relationship names of ``topic``'s resource, each once, in the
    order given. CopyInputError names the ones that are not."""
    allowed = INCLUDABLE.get(TOPICS[topic], ())
    if not isinstance(paths, list | tuple):
        raise CopyInputError("include_resources", "must be an array of relationship names")
    checked = [path for path in paths if isinstance(path, str) and path in allowed]
    if len(checked) < len(paths):
        unknown = [path for path in paths if path not in checked]
        listed = ", ".join(allowed) if allowed else "nothing"
        raise CopyInputError(
            "include_resources",
            f"{', '.join(map(repr, unknown))}: {topic} payloads can include {listed}",
        )
    return list(dict.fromkeys(checked))


def create(
    session: Session,
    *,
    mode: Mode,
    topic: str,
    callback_url: str,
    name: str | None = None,
    include_resources: Sequence[str] = (),
    reference: str | None = None,
    reference_origin: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    now: datetime,
) -> Webhook:
    """A webhook of ``mode`` sending ``topic``'s events to ``callback_url``, with a new
    shared secret; added to the session. Raises CopyInputError naming the field (before
    the session is touched). Does not commit."""
    topic = check_topic(topic)
    paths = check_include_resources(topic, include_resources)
    check_callback_url(callback_url, mode)
    webhook = Webhook(
        id=new_public_id(),
        mode=mode,
        name=name,
        topic=topic,
        callback_url=callback_url,
        include_resources=paths,
        shared_secret=signing.new_secret(),
        circuit_state=CircuitState.CLOSED,
        circuit_failure_count=0,
        reference=reference,
        reference_origin=reference_origin,
        metadata_=dict(metadata or {}),
        created_at=now,
        updated_at=now,
    )
    session.add(webhook)
    return webhook


def update(webhook: Webhook, changes: Mapping[str, Any]) -> None:
    """Set ``changes`` (field → value, fields of :data:`EDITABLE`) on ``webhook`` after
    the checks ``create`` makes: a new topic checks the includes again, a callback URL is
    checked for the webhook's mode. Raises CopyInputError with the webhook unchanged.
    Does not commit."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    values = dict(changes)
    if "topic" in values:
        values["topic"] = check_topic(values["topic"])
    if "topic" in values or "include_resources" in values:
        values["include_resources"] = check_include_resources(
            values.get("topic", webhook.topic),
            values.get("include_resources", webhook.include_resources),
        )
    if "callback_url" in values:
        check_callback_url(values["callback_url"], webhook.mode)
    if "metadata" in values:
        if not isinstance(values["metadata"], Mapping):
            raise CopyInputError("metadata", "must be an object")
        values["metadata_"] = dict(values.pop("metadata"))
    for field, value in values.items():
        setattr(webhook, field, value)


def reset_circuit(session: Session, webhook: Webhook, now: datetime) -> None:
    """Close the webhook's circuit and make its pending events that were waiting due now,
    so the backlog goes out at once (those a deliverer holds, its call under way, stay
    with it). Does not commit."""
    circuits.close(webhook)
    # Events already due keep their due time, and so their place in the queue.
    session.execute(
        sql_update(WebhookEvent)
        .where(
            WebhookEvent.webhook_id == webhook.id,
            WebhookEvent.status == EventStatus.PENDING,
            WebhookEvent.next_attempt_at > now,
            or_(WebhookEvent.taken_until.is_(None), WebhookEvent.taken_until <= now),
        )
        .values(next_attempt_at=now, updated_at=now)
    )


def disable(webhook: Webhook, now: datetime) -> None:
    """Stop writing events for the webhook (``events.record``) and sending its pending ones
    (``delivery.take_due``); a webhook disabled already keeps the time it was disabled at."""
    if webhook.disabled_at is None:
        webhook.disabled_at = now


def enable(webhook: Webhook) -> None:
    """Write and send the webhook's events again (none was written while it was disabled)."""
    webhook.disabled_at = None
