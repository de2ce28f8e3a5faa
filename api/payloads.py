"""Webhook payloads: a resource's JSON:API document as ``GET`` answers it, with the
webhook's ``include_resources`` included. The deliverer renders it when it sends; a
resource being deleted has its ``*.destroy`` events' documents rendered first, kept
with each event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from api import lookups
from api.documents import Renderer
from api.resources import REGISTRY
from api.spec import Resource
from copying.webhooks import events
from copying.webhooks.topics import TOPICS
from models import Mode, OrderCopy, utcnow


def payload(
    session: Session,
    resource_type: str,
    resource_id: str,
    mode: Mode,
    include: Sequence[str],
    *,
    base_url: str,
) -> dict[str, Any] | None:
    """The document, or None when the resource is gone (deleted since its event)."""
    resource = REGISTRY[resource_type]
    row = lookups.find(session, resource.model, resource_id, mode)
    if row is None:
        return None
    return _document(session, resource, row, mode, include, base_url)


def record_destroyed(
    session: Session, resource: Resource, row: Any, mode: Mode, *, base_url: str
) -> None:
    """Before ``row`` is deleted: its ``<type>.destroy`` events, each with the document
    its webhook would have got (none when the type has no such topic)."""
    # A copy is deleted through /api/order_copies; a renewal's topic is its own type's.
    kind = row.copy_type if isinstance(row, OrderCopy) else resource.type
    topic = f"{kind}.destroy"
    if topic not in TOPICS:
        return
    resource = REGISTRY[TOPICS[topic]]
    events.record(
        session,
        [events.Change(row.id, mode, topic)],
        utcnow(),
        snapshot=lambda include: _document(session, resource, row, mode, include, base_url),
    )


def _document(
    session: Session,
    resource: Resource,
    row: Any,
    mode: Mode,
    include: Sequence[str],
    base_url: str,
) -> dict[str, Any]:
    wanted = [name for name in include if resource.relationship(name) is not None]
    renderer = Renderer(REGISTRY, base_url, {}, wanted)
    return renderer.document(session, resource, [row], mode, single=True)
